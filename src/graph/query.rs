//! Questions to the graph: who depends on a model version (`dependents`), what a
//! consumer depends on (`dependencies`), and a summary of a retirement's reach (`impact`).
//!
//! Both walks are breadth-first, so each node is reached by a shortest path, which is the
//! path shown to explain it. A node is visited once, so cycles cannot loop; cycles among
//! the consumers reached are found afterwards (Tarjan) and reported. Answers are honest
//! about what they leave out: nodes beyond the depth limit and beyond the size limit are
//! counted, and an answer that leaves anything out says it is not complete.
//!
//! Why this file is long: the walk, the answer types it fills and the cycle search share
//! private per-thread buffers and read the performance layer (`WalkIndex`) directly; cut
//! apart, those buffers and the walk's internals would have to be opened to each other.

use super::edge::{Edge, Kind};
use super::packed::{At, Span, whole};
use super::{InventoryGraph, Node};
use crate::domain::{
    Consumer, ConsumerName, Derivation, EdgeKind, EdgeOrigin, ModelName, Version, VersionRange,
};
use chrono::{DateTime, Duration, Utc};
use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeRef, NodeIndexable};
use std::collections::BTreeMap;
use std::sync::Arc;

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

    /// An edge last seen before this [`super::stamp`] is stale: what
    /// [`EdgeRecord::is_stale`] decides, as one comparison per edge.
    fn stale_before(&self) -> i64 {
        self.now
            .checked_sub_signed(self.stale_after)
            .map_or(i64::MIN, super::stamp)
    }
}

/// A node an answer reaches.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The graph's own consumer, shared (see `Node::Consumer`).
    Consumer(Arc<Consumer>),
    Version {
        model: ModelName,
        version: Version,
    },
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
    pub origin_name: Arc<str>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub observations: u64,
    pub stale: bool,
}

/// One edge of an explaining path, from the dependent to what it depends on. Its names
/// are shared with the graph and with the answer's other paths, which for a hub's
/// thousand direct users all end at the one version asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: EdgeKind,
    pub from: Arc<str>,
    pub to: Arc<str>,
    /// For `uses`: the version or range the consumer declared or was seen using.
    pub range: Option<Arc<VersionRange>>,
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
    /// The graph met a change it could not apply and is being loaded again: the answer
    /// may lack what that change added. Set by the service, which knows.
    pub behind: bool,
}

impl Answer {
    /// Whether nothing was left out. Stale edges skipped on request do not make an
    /// answer incomplete: they are what was asked for, and counted.
    pub fn complete(&self) -> bool {
        !self.behind && self.omitted_by_depth == 0 && self.omitted_by_limit == 0
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

/// A node an answer lists: its depth and order key (how answers order them), and its
/// place in the walk.
type Listed<'g> = (u32, (u8, &'g str, Version), NodeIndex, u32);

/// The labels of the versions (and models) an answer's paths name, built once each.
type Labels = HashMap<NodeIndex, Arc<str>>;

/// Visits a walk expands together; see [`InventoryGraph::dependents_of`].
const BATCH: usize = 32;

/// One step a walk can take from a node.
#[derive(Clone, Copy)]
struct Next {
    /// The place in its batch of the visit it leaves.
    of: u32,
    edge: EdgeIndex,
    node: NodeIndex,
    kind: EdgeKind,
    /// As [`super::stamp`] gives it.
    last_seen: i64,
    /// The sort prefix of `node`'s name, or 0 where it is not known without reading it.
    key: u64,
    /// Known to have nothing depending on it, so a dependents walk need not look.
    leaf: bool,
    /// A `depends_on` link that may lie on a circle (see [`InventoryGraph::may_loop`]).
    may_loop: bool,
    /// Where `node`'s packed arrivals lie, when the arrival that leads there knew.
    span: Span,
}

/// How a walk reads a node's arrivals (see `packed::At`): packed, with their
/// dependents' spans, or from the node's own list.
impl At<'_> {
    /// Each arrival with where its dependent's packed arrivals lie, if known.
    #[inline(always)]
    fn each_newest_first(self, mut f: impl FnMut(&super::Arrival, Span)) {
        match self {
            At::Packed(hot, cold) => {
                for (h, c) in hot.iter().zip(cold).rev() {
                    f(&whole(h, c), h.from_span);
                }
            }
            At::Live(list) => list.iter().rev().for_each(|a| f(a, Span::UNPACKED)),
        }
    }

    /// Something of the first arrival (of its hot part, when packed), read to start
    /// its cache line on its way.
    fn first_read(self) -> u32 {
        let first = match self {
            At::Packed(hot, _) => hot.first().map(|h| h.from.index()),
            At::Live(list) => list.first().map(|a| a.edge.index()),
        };
        first.map_or(0, |i| i as u32)
    }
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

impl Walk {
    /// Whether a step along an edge of this kind lands on a consumer.
    fn reaches_consumer(self, kind: EdgeKind) -> bool {
        match (kind, self) {
            (EdgeKind::DependsOn, _) | (EdgeKind::Uses, Walk::Dependents) => true,
            (EdgeKind::Uses | EdgeKind::DerivedFrom, _) => false,
        }
    }
}

/// One node a walk reached.
#[derive(Clone, Copy)]
struct Visit {
    ix: NodeIndex,
    depth: u32,
    /// The place in the walk of the node this one was reached from, and the edge
    /// between them.
    via: Option<(u32, EdgeIndex)>,
    /// Known from the edge that reached it, so counting consumers reads no node.
    consumer: bool,
    /// The sort prefix of its name, when the edge that reached it knew it, else 0.
    key: u64,
    /// Known to have nothing depending on it (see [`Next::leaf`]).
    leaf: bool,
    /// See [`Next::span`].
    span: Span,
}

/// The nodes a walk reached, in the order reached (so by depth), and which nodes those
/// are as one bit per node index. A hub question tests tens of thousands of nodes; a
/// bit per node keeps that test in the core's own cache (a million nodes take 128 KiB)
/// where anything wider missed it for most nodes. Both are kept per thread: the bits
/// cleared by what was visited, so a small question does not pay for the graph's size,
/// and the list emptied but not freed, since growing it afresh to a hub's size had the
/// kernel clear new pages for every question.
struct Visits {
    order: Vec<Visit>,
    /// Visits deeper than any an answer may list, in the order reached: all a walk
    /// needs of them is to go on from them and to count them, so they are kept in a
    /// third of a visit's room. For a hub that is most of its tens of thousands, and
    /// writing them whole was much of what a cold cache cost.
    beyond: Vec<Beyond>,
    seen: Vec<u64>,
    /// The words of `seen` this walk set bits in, to clear after it: leaves beyond the
    /// cut are counted, not kept, so the visits do not name every node seen.
    dirty: Vec<u32>,
    /// Per depth, the consumers beyond the cut that nothing depends on: a walk need not
    /// go on from them, and an answer only counts them. For a hub that is about half of
    /// its dependents.
    leaves: Vec<u32>,
    /// How many visits after the start an answer may list.
    listed: usize,
    /// Once `listed` visits are in `order`, the depth of the last: deeper visits go to
    /// `beyond`. Walks are breadth-first, so every later visit is at least as deep, and
    /// `order` is complete before `beyond` gets its first.
    cut_depth: Option<u32>,
}

/// A visit in [`Visits::beyond`]: no path leads through it to a listed node, and no
/// name of it is needed to choose which are listed.
#[derive(Clone, Copy)]
struct Beyond {
    ix: NodeIndex,
    depth: u32,
    span: Span,
    consumer: bool,
}

impl Beyond {
    fn visit(self) -> Visit {
        Visit {
            ix: self.ix,
            depth: self.depth,
            via: None,
            consumer: self.consumer,
            key: 0,
            // Leaves beyond the cut are counted, not kept.
            leaf: false,
            span: self.span,
        }
    }
}

thread_local! {
    static SEEN: std::cell::Cell<Vec<u64>> = const { std::cell::Cell::new(Vec::new()) };
    static ORDER: std::cell::Cell<Vec<Visit>> = const { std::cell::Cell::new(Vec::new()) };
    static BEYOND: std::cell::Cell<Vec<Beyond>> = const { std::cell::Cell::new(Vec::new()) };
    static BUCKET: std::cell::Cell<Vec<Cheap>> = const { std::cell::Cell::new(Vec::new()) };
    static DIRTY: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A visit as the cut by name first sees it (see [`InventoryGraph::first_by_name`]): kept
/// per thread like the visits, since a hub's is a megabyte that the kernel otherwise
/// clears afresh for every question.
#[derive(Clone, Copy)]
struct Cheap {
    /// Consumers are listed before models at the same depth.
    models_after: bool,
    /// The sort prefix of the name (see [`Visit::key`]).
    key: u64,
    /// Where the visit stands among those within the depth limit.
    at: u32,
}

/// Visits (and cut buckets) a thread keeps room for between questions, 8 MiB each: a
/// hub's, not a whole graph's.
const ORDER_KEPT: usize = 1 << 18;

impl Visits {
    /// Room for a walk over a graph of `node_bound` node indexes, whose answer lists at
    /// most `listed` of the nodes it reaches (`usize::MAX`: every visit kept whole).
    fn new(node_bound: usize, listed: usize) -> Self {
        let mut seen = SEEN.with(|s| s.take());
        let words = node_bound.div_ceil(64);
        if seen.len() < words {
            seen.resize(words, 0);
        }
        Self {
            order: ORDER.with(|o| o.take()),
            beyond: BEYOND.with(|b| b.take()),
            seen,
            dirty: DIRTY.with(|d| d.take()),
            leaves: Vec::new(),
            listed,
            cut_depth: None,
        }
    }

    /// Marks the node seen; false when it was already.
    #[inline(always)]
    fn see(&mut self, ix: NodeIndex) -> bool {
        let i = ix.index();
        if i / 64 >= self.seen.len() {
            self.seen.resize(i / 64 + 1, 0);
        }
        let (word, bit) = (&mut self.seen[i / 64], 1u64 << (i % 64));
        if *word & bit != 0 {
            return false;
        }
        if *word == 0 {
            self.dirty.push(u32::try_from(i / 64).unwrap_or(u32::MAX));
        }
        *word |= bit;
        true
    }

    /// Adds `v` unless its node was reached already.
    #[inline(always)]
    fn insert(&mut self, v: Visit) {
        if !self.see(v.ix) {
            return;
        }
        match self.cut_depth {
            Some(cut) if v.depth > cut => {
                self.push_beyond(v.ix, v.depth, v.span, v.consumer, v.leaf)
            }
            _ => {
                self.order.push(v);
                // `order` holds the start first, then the visits an answer may list.
                if self.cut_depth.is_none() && self.order.len() > self.listed {
                    self.cut_depth = Some(v.depth);
                }
            }
        }
    }

    /// Adds a visit known to lie beyond the cut, unless its node was reached already.
    #[inline(always)]
    fn insert_beyond(&mut self, ix: NodeIndex, depth: u32, span: Span, consumer: bool, leaf: bool) {
        if self.see(ix) {
            self.push_beyond(ix, depth, span, consumer, leaf);
        }
    }

    /// A leaf consumer is only counted. A version is kept whatever its flag says: its
    /// users arrive at its model, not at it.
    #[inline(always)]
    fn push_beyond(&mut self, ix: NodeIndex, depth: u32, span: Span, consumer: bool, leaf: bool) {
        if leaf && consumer {
            let d = depth as usize;
            if self.leaves.len() <= d {
                self.leaves.resize(d + 1, 0);
            }
            self.leaves[d] += 1;
        } else {
            self.beyond.push(Beyond {
                ix,
                depth,
                span,
                consumer,
            });
        }
    }

    /// The leaves beyond the cut within `max_depth`, and those deeper.
    fn leaves_counted(&self, max_depth: u32) -> (usize, usize) {
        let (mut within, mut deeper) = (0, 0);
        for (depth, &n) in self.leaves.iter().enumerate() {
            if depth as u64 <= u64::from(max_depth) {
                within += n as usize;
            } else {
                deeper += n as usize;
            }
        }
        (within, deeper)
    }

    /// Every visit kept so far, the start first: all but the leaves beyond the cut,
    /// which are only counted and which a walk does not go on from.
    fn len(&self) -> usize {
        self.order.len() + self.beyond.len()
    }

    /// The visits from `at` to `end` in the order reached, into `batch`.
    fn copy_to(&self, at: usize, end: usize, batch: &mut Vec<Visit>) {
        let whole = self.order.len();
        if at < whole {
            batch.extend_from_slice(&self.order[at..end.min(whole)]);
        }
        if end > whole {
            let from = at.max(whole) - whole;
            batch.extend(self.beyond[from..end - whole].iter().map(|b| b.visit()));
        }
    }

    /// The packed spans of the visits from `at` to `end` (fewer where the walk has not
    /// reached that far), for reading their arrivals ahead.
    fn spans(&self, at: usize, end: usize) -> impl Iterator<Item = Span> + '_ {
        let whole = self.order.len();
        (at..end.min(self.len())).map(move |i| match self.order.get(i) {
            Some(v) => v.span,
            None => self.beyond[i - whole].span,
        })
    }

    fn contains(&self, ix: NodeIndex) -> bool {
        let i = ix.index();
        self.seen
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// The visits kept whole: all of them for a walk that lists everything it reaches.
    fn iter(&self) -> std::slice::Iter<'_, Visit> {
        self.order.iter()
    }
}

impl Drop for Visits {
    fn drop(&mut self) {
        for &w in &self.dirty {
            if let Some(w) = self.seen.get_mut(w as usize) {
                *w = 0;
            }
        }
        let seen = std::mem::take(&mut self.seen);
        SEEN.with(|s| s.set(seen));
        give_back(&DIRTY, std::mem::take(&mut self.dirty));
        give_back(&ORDER, std::mem::take(&mut self.order));
        give_back(&BEYOND, std::mem::take(&mut self.beyond));
    }
}

/// Empties `list` and keeps it, with room for at most [`ORDER_KEPT`], for the thread's
/// next question.
fn give_back<T>(to: &'static std::thread::LocalKey<std::cell::Cell<Vec<T>>>, mut list: Vec<T>) {
    list.clear();
    list.shrink_to(ORDER_KEPT);
    to.with(|kept| kept.set(list));
}

impl InventoryGraph {
    /// Who depends on `version`, `None` when the graph does not hold that version.
    pub fn dependents(&self, version: super::VersionId, q: &Query) -> Option<Answer> {
        let start = *self.versions.get(&version)?;
        Some(self.walk(start, Walk::Dependents, q))
    }

    /// The consumer as an answer names it (the graph's own, shared), `None` when the
    /// graph does not hold it.
    pub fn consumer_target(&self, consumer: super::ConsumerId) -> Option<Target> {
        Some(self.target(*self.consumers.get(&consumer)?))
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
        let stale_before = q.stale_before();
        for &ix in &set {
            next.clear();
            self.dependencies_of(ix, 0, &mut |n| next.push(n));
            for &Next {
                node: to,
                last_seen,
                ..
            } in &next
            {
                let followed = q.include_stale || last_seen >= stale_before;
                if followed && set.contains(&to) {
                    links.push((self.label(ix), self.label(to)));
                }
            }
        }
        links.sort();
        links.dedup();
        Some((answer, links))
    }

    /// Whether `version` derives from `ancestor` through the graph's derivations and
    /// `also` (version, parent) pairs not yet in it: those a message declared before.
    pub fn derives_from_with(
        &self,
        version: super::VersionId,
        ancestor: super::VersionId,
        also: &[(super::VersionId, super::VersionId)],
    ) -> bool {
        let mut seen: HashSet<super::VersionId> = HashSet::default();
        let mut todo = vec![version];
        while let Some(v) = todo.pop() {
            if v == ancestor {
                return true;
            }
            if !seen.insert(v) {
                continue;
            }
            todo.extend(also.iter().filter(|(c, _)| *c == v).map(|&(_, p)| p));
            let Some(&ix) = self.versions.get(&v) else {
                continue;
            };
            todo.extend(
                self.g
                    .edges_directed(ix, Direction::Outgoing)
                    .filter_map(|e| match (e.weight().kind, &self.g[e.target()]) {
                        (Kind::DerivedFrom(_), Node::Version { id, .. }) => Some(*id),
                        _ => None,
                    }),
            );
        }
        false
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
        let (visits, _, _) = self.traverse(start, Walk::Dependencies, &q, usize::MAX);
        visits
            .iter()
            .filter_map(|v| match &self.g[v.ix] {
                Node::Version { model, .. } => Some(self.version_model_name(*model).clone()),
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
        let (visits, stale_skipped, cycles) =
            self.traverse(start, Walk::Dependents, &q, usize::MAX);
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
                    let observed = self.g.edges_directed(ix, Direction::Outgoing).any(|e| {
                        !e.weight().origin.is_declared() && e.weight().last_seen() >= since
                    });
                    if observed {
                        impact.active += 1;
                    }
                }
                Node::Version { .. } => impact.derived_versions += 1,
                Node::Model { .. } => {}
            }
        }
        impact.stale_edges = stale.len();
        Some(impact)
    }

    fn walk(&self, start: NodeIndex, walk: Walk, q: &Query) -> Answer {
        self.walk_nodes(start, walk, q).0
    }

    /// Cuts `bucket` (visits at one depth, as indexes into `within`, with their sort
    /// prefixes) down to its first `need` in the order answers list them. A hub's bucket
    /// holds tens of thousands; they are told apart by the sort prefixes, and only the
    /// few that tie with the last one kept are read for their whole names.
    fn first_by_name(&self, bucket: &mut Vec<Cheap>, need: usize, within: &[Visit]) {
        if need >= bucket.len() {
            return;
        }
        let prefix = |c: &Cheap| (c.models_after, c.key);
        let (_, &mut last, _) = bucket.select_nth_unstable_by_key(need - 1, prefix);
        let boundary = prefix(&last);
        bucket.retain(|c| prefix(c) <= boundary);
        bucket.sort_unstable_by_key(prefix);
        // At most `need - 1` sort strictly before the boundary, so at least one tie is
        // wanted.
        let before = bucket.partition_point(|c| prefix(c) < boundary);
        let want = need - before;
        let ties = &mut bucket[before..];
        if want < ties.len() {
            ties.select_nth_unstable_by_key(want - 1, |c| self.order_key(within[c.at as usize].ix));
        }
        bucket.truncate(need);
    }

    /// Reads what listing `picked` will read (each node, its consumer's record and name,
    /// and the edge that reached it) a kind at a time for all of them: each pass's reads
    /// do not wait on one another, so their cache misses overlap, where listing node by
    /// node met four in a row for each of a hub's thousand listed dependents.
    fn read_ahead<'v>(&self, picked: impl Iterator<Item = &'v Visit> + Clone) {
        let mut touched = 0usize;
        let nodes = || picked.clone().filter_map(|v| self.g.node_weight(v.ix));
        for node in nodes() {
            if let Node::Consumer(id, _) = node {
                touched ^= id.0 as usize;
            }
        }
        for node in nodes() {
            if let Node::Consumer(_, c) = node {
                // The count an answer's clone adds to, and the name, may be a line apart.
                touched ^= Arc::strong_count(c) ^ c.name.as_str().len();
            }
        }
        for node in nodes() {
            if let Node::Consumer(_, c) = node {
                touched ^= usize::from(c.name.as_str().as_bytes().first().copied().unwrap_or(0));
            }
        }
        for v in picked {
            if let Some((_, ex)) = v.via
                && let Some(e) = self.g.edge_weight(ex)
            {
                touched ^= e.observations() as usize ^ usize::from(e.kind == Kind::Uses);
            }
        }
        std::hint::black_box(touched);
    }

    /// The answer, and the nodes it returns (without `start`).
    fn walk_nodes(&self, start: NodeIndex, walk: Walk, q: &Query) -> (Answer, Vec<NodeIndex>) {
        let (visits, stale_edges_skipped, cycles) = self.traverse(start, walk, q, q.limit);
        // Visits come in the order reached, so by depth; the first is `start`. Those
        // beyond what may be listed are all deeper than those kept whole.
        let reached_all = &visits.order[1..];
        let within = &reached_all[..reached_all.partition_point(|v| v.depth <= q.max_depth)];
        let beyond = &visits.beyond[..visits.beyond.partition_point(|b| b.depth <= q.max_depth)];
        let (leaves_within, leaves_deeper) = visits.leaves_counted(q.max_depth);
        let omitted_by_depth =
            reached_all.len() - within.len() + (visits.beyond.len() - beyond.len()) + leaves_deeper;
        let consumers_total = within.iter().filter(|v| v.consumer).count()
            + beyond.iter().filter(|b| b.consumer).count()
            + leaves_within;
        let total = within.len() + beyond.len() + leaves_within;
        let returned = total.min(q.limit);
        // The first `returned` by depth and then name: every depth before the one the cut
        // falls in, and the first of that one. Only those nodes are read for their names.
        // Each with its place in the walk (`within` starts at the second).
        let mut chosen: Vec<Listed> = Vec::with_capacity(returned);
        if returned > 0 {
            let keyed = |(place, v): (u32, &Visit)| (v.depth, self.order_key(v.ix), v.ix, place);
            let cut_depth = within[returned - 1].depth;
            let before = within.partition_point(|v| v.depth < cut_depth);
            let end = within.partition_point(|v| v.depth <= cut_depth);
            let placed = |from: usize, to: usize| {
                let first = u32::try_from(from + 1).unwrap_or(u32::MAX);
                (first..).zip(&within[from..to])
            };
            let need = returned - before;
            let mut bucket = BUCKET.with(|b| b.take());
            bucket.extend((before..end).map(|at| Cheap {
                models_after: !within[at].consumer,
                key: within[at].key,
                at: u32::try_from(at).unwrap_or(u32::MAX),
            }));
            self.first_by_name(&mut bucket, need, within);
            let picked = within[..before]
                .iter()
                .chain(bucket.iter().map(|c| &within[c.at as usize]));
            self.read_ahead(picked);
            chosen.extend(placed(0, before).map(keyed));
            chosen.extend(bucket.iter().map(|c| {
                let at = c.at as usize;
                keyed((u32::try_from(at + 1).unwrap_or(u32::MAX), &within[at]))
            }));
            give_back(&BUCKET, bucket);
            chosen.sort_unstable();
        }
        let mut labels = Labels::default();
        let reached = chosen
            .iter()
            .map(|&(depth, _, ix, place)| Reached {
                target: self.target(ix),
                depth,
                path: self.path(place, &visits, walk, q, &mut labels),
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
            behind: false,
        };
        (answer, chosen.iter().map(|w| w.2).collect())
    }

    /// Breadth-first from `start`. Nodes beyond `max_depth` are still visited (and
    /// counted by the caller) so an answer can say how much a depth limit left out;
    /// a non-transitive question stops at depth one.
    ///
    /// At most `listed` visits after the start are kept whole for an answer to list
    /// (see [`Visits::beyond`]); a walk that is not transitive keeps all of its few.
    ///
    /// Longer than a screen on purpose: it is the walk every hub question pays for per
    /// dependent, and keeping the loop in one body keeps its state in registers (the
    /// inventory benchmark's hub figures are measured on this shape).
    fn traverse(
        &self,
        start: NodeIndex,
        walk: Walk,
        q: &Query,
        listed: usize,
    ) -> (Visits, usize, Vec<Cycle>) {
        let listed = if q.transitive { listed } else { usize::MAX };
        let mut visits = Visits::new(self.g.node_bound(), listed);
        visits.insert(Visit {
            ix: start,
            depth: 0,
            via: None,
            consumer: matches!(self.g[start], Node::Consumer(..)),
            key: 0,
            leaf: false,
            span: self.walk.packed.span(start),
        });
        let mut stale_skipped: HashSet<EdgeIndex> = HashSet::default();
        // Followed `depends_on` links that may be on a circle, as (dependent,
        // dependency): every one among the nodes reached is met on the way when the walk
        // is transitive, so cycles need no second pass over the consumers' edges.
        let mut links: Vec<(NodeIndex, NodeIndex)> = Vec::new();
        let stale_before = q.stale_before();
        let mut batch: Vec<Visit> = Vec::with_capacity(BATCH);
        let mut at = 0;
        // A question that is not transitive expands only the node asked about.
        let expanded = |len: usize| if q.transitive { len } else { 1 };
        while at < expanded(visits.len()) {
            let end = (at + BATCH).min(expanded(visits.len()));
            batch.clear();
            visits.copy_to(at, end, &mut batch);
            // Once every step from the batch lands beyond the cut, where visits keep
            // no path or key and leaves are only counted, steps take the short way.
            if walk == Walk::Dependents
                && q.transitive
                && visits.cut_depth.is_some_and(|cut| batch[0].depth >= cut)
            {
                // The next batch's arrivals are read now, so that their misses overlap
                // this batch's work rather than wait for the batch's own first reads.
                let mut touched = 0u32;
                for span in visits.spans(end, end + BATCH) {
                    touched ^= self.walk.packed.first_read(span);
                }
                std::hint::black_box(touched);
                self.expand_beyond(
                    &batch,
                    &mut visits,
                    q,
                    stale_before,
                    &mut stale_skipped,
                    &mut links,
                );
                at = end;
                continue;
            }
            // Each step is taken as it is found rather than listed first: a hub's first
            // batch holds all its direct users, and a list of them cost a cold cache a
            // megabyte and a half written and read again.
            self.neighbours(&batch, walk, &mut |step: Next| {
                let Next {
                    of,
                    edge: ex,
                    node: to,
                    kind,
                    last_seen,
                    key,
                    leaf,
                    may_loop,
                    span,
                } = step;
                let Visit { ix, depth, .. } = batch[of as usize];
                if !q.include_stale && last_seen < stale_before {
                    stale_skipped.insert(ex);
                    return;
                }
                let consumer = walk.reaches_consumer(kind);
                // `at + of` is where `ix` stands in the walk; it fits, as the walk's
                // length fits the slots of a node index.
                let here = u32::try_from(at).unwrap_or(u32::MAX) + of;
                visits.insert(Visit {
                    ix: to,
                    depth: depth + 1,
                    via: Some((here, ex)),
                    consumer,
                    key,
                    leaf,
                    span,
                });
                if kind == EdgeKind::DependsOn && may_loop {
                    links.push(match walk {
                        Walk::Dependents => (to, ix),
                        Walk::Dependencies => (ix, to),
                    });
                }
            });
            at = end;
        }
        if !q.transitive {
            // Links between nodes at depth one were not walked; look them up.
            links = self.links_among(&visits, q);
        }
        let cycles = self.cycles(links);
        (visits, stale_skipped.len(), cycles)
    }

    /// The nodes one step from each visit of `batch`, with the edge that leads there,
    /// in the order of the batch.
    fn neighbours(&self, batch: &[Visit], walk: Walk, emit: &mut impl FnMut(Next)) {
        match walk {
            Walk::Dependents => self.dependents_of(batch, emit),
            Walk::Dependencies => {
                for (of, v) in (0..).zip(batch) {
                    self.dependencies_of(v.ix, of, emit);
                }
            }
        }
    }

    /// Read from the packed arrivals where they are current, else from the node's list
    /// (see `packed.rs`), newest first as petgraph lists them. Each visit knows whether
    /// it is a consumer, so no node is read to find out.
    fn dependents_of(&self, batch: &[Visit], emit: &mut impl FnMut(Next)) {
        let found = self.found_for(batch);
        for ((of, v), found) in (0..).zip(batch).zip(found) {
            self.dependents_of_one(of, v, found, emit);
        }
    }

    /// [`Self::dependents_of`] for the visit at `of` in its batch, whose arrivals (when it
    /// is a consumer) were found with the batch's.
    #[inline(always)]
    fn dependents_of_one(&self, of: u32, v: &Visit, found: At<'_>, emit: &mut impl FnMut(Next)) {
        let next = |of, a: &super::Arrival, span, kind| Next {
            of,
            edge: a.edge,
            node: a.from,
            kind,
            last_seen: a.last_seen,
            key: a.key,
            leaf: !a.from_depended_on,
            may_loop: self.walk.loops_unknown || a.looping,
            span,
        };
        if v.consumer {
            found.each_newest_first(|a, span| emit(next(of, a, span, EdgeKind::DependsOn)));
            return;
        }
        let &Node::Version { model, version, .. } = &self.g[v.ix] else {
            return;
        };
        let at_model = self.found(model, self.walk.packed.span(model));
        at_model.each_newest_first(|a, span| {
            if self.ranges.get(a.range).is_some_and(|r| r.matches(version)) {
                emit(next(of, a, span, EdgeKind::Uses));
            }
        });
        let own = self.found(v.ix, self.walk.packed.span(v.ix));
        own.each_newest_first(|a, span| emit(next(of, a, span, EdgeKind::DerivedFrom)));
    }

    /// The arrivals of the batch's consumers, found for the whole batch before any is
    /// read, and the first of each read then (folded into `touched`, so the read is
    /// kept): the reads do not wait on one another, so their cache misses overlap
    /// instead of coming one after the other as they are emitted.
    #[inline(always)]
    fn found_for(&self, batch: &[Visit]) -> [At<'_>; BATCH] {
        let mut touched = 0u32;
        let mut found = [At::Live(&[]); BATCH];
        for (f, v) in found.iter_mut().zip(batch) {
            if v.consumer && !v.leaf {
                *f = self.found(v.ix, v.span);
                touched ^= f.first_read();
            }
        }
        std::hint::black_box(touched);
        found
    }

    /// [`Self::dependents_of`] for a batch whose every step lands beyond the cut, where
    /// visits keep no path or key and leaves are only counted. A consumer's packed
    /// arrivals are read for their hot parts alone unless stale edges are to be skipped.
    #[allow(clippy::too_many_arguments)]
    fn expand_beyond(
        &self,
        batch: &[Visit],
        visits: &mut Visits,
        q: &Query,
        stale_before: i64,
        stale_skipped: &mut HashSet<EdgeIndex>,
        links: &mut Vec<(NodeIndex, NodeIndex)>,
    ) {
        let found = self.found_for(batch);
        for (v, found) in batch.iter().zip(found) {
            match found {
                At::Packed(hot, _) if v.consumer && q.include_stale => {
                    for h in hot.iter().rev() {
                        visits.insert_beyond(h.from, v.depth + 1, h.from_span, true, h.leaf());
                        if self.walk.loops_unknown || h.looping() {
                            links.push((h.from, v.ix));
                        }
                    }
                }
                _ => self.dependents_of_one(0, v, found, &mut |step: Next| {
                    if !q.include_stale && step.last_seen < stale_before {
                        stale_skipped.insert(step.edge);
                        return;
                    }
                    let consumer = Walk::Dependents.reaches_consumer(step.kind);
                    visits.insert_beyond(step.node, v.depth + 1, step.span, consumer, step.leaf);
                    if step.kind == EdgeKind::DependsOn && step.may_loop {
                        links.push((step.node, v.ix));
                    }
                }),
            }
        }
    }

    /// A node's arrivals: packed where `span` says, or where the node's own span says
    /// when the arrival that reached it could not (it came from a list), else from its
    /// list.
    fn found(&self, ix: NodeIndex, span: Span) -> At<'_> {
        let span = if span.is_packed() {
            span
        } else {
            self.walk.packed.span(ix)
        };
        if span.is_packed() {
            self.walk.packed.list(span)
        } else {
            At::Live(self.walk.list(ix))
        }
    }

    fn dependencies_of(&self, ix: NodeIndex, of: u32, emit: &mut impl FnMut(Next)) {
        let next = |e: petgraph::stable_graph::EdgeReference<'_, Edge>, node| Next {
            of,
            edge: e.id(),
            node,
            kind: e.weight().kind.edge_kind(),
            last_seen: super::stamp(e.weight().last_seen()),
            key: 0,
            leaf: false,
            may_loop: e.weight().depends_on() && self.may_loop(e.id()),
            span: Span::UNPACKED,
        };
        match &self.g[ix] {
            Node::Consumer(..) => {
                for e in self.g.edges_directed(ix, Direction::Outgoing) {
                    match (e.weight().kind, &self.g[e.target()]) {
                        (Kind::DependsOn, _) => emit(next(e, e.target())),
                        (Kind::Uses, Node::Model { id: model, .. }) => {
                            let Some(range) = self.ranges.get(e.weight().range) else {
                                continue;
                            };
                            let versions = self.model_versions.get(model);
                            for (version, id) in versions.into_iter().flat_map(|v| v.iter()) {
                                if range.matches(version)
                                    && let Some(&vx) = self.versions.get(&id)
                                {
                                    emit(next(e, vx));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            Node::Version { .. } => {
                for e in self.g.edges_directed(ix, Direction::Outgoing) {
                    if matches!(e.weight().kind, Kind::DerivedFrom(_)) {
                        emit(next(e, e.target()));
                    }
                }
            }
            Node::Model { .. } => {}
        }
    }

    /// Whether a `depends_on` edge may lie on a circle (see `InventoryGraph::looping`).
    fn may_loop(&self, ex: EdgeIndex) -> bool {
        self.walk.loops_unknown
            || (!self.walk.looping.is_empty() && self.walk.looping.contains(&ex))
    }

    /// Followed `depends_on` links that may be on a circle among the consumers visited.
    fn links_among(&self, visits: &Visits, q: &Query) -> Vec<(NodeIndex, NodeIndex)> {
        let mut links = Vec::new();
        for v in visits.iter().filter(|v| v.consumer) {
            for e in self.g.edges_directed(v.ix, Direction::Outgoing) {
                let followed = q.include_stale || !e.weight().is_stale(q.now, q.stale_after);
                if e.weight().depends_on()
                    && followed
                    && self.may_loop(e.id())
                    && visits.contains(e.target())
                {
                    links.push((v.ix, e.target()));
                }
            }
        }
        links
    }

    /// Circles among `links` (dependent, dependency) between consumers the walk reached.
    fn cycles(&self, links: Vec<(NodeIndex, NodeIndex)>) -> Vec<Cycle> {
        if links.is_empty() {
            return Vec::new();
        }
        // The nodes the links join, numbered densely for the peel.
        let mut numbered: HashMap<NodeIndex, u32> = HashMap::default();
        let mut nodes: Vec<NodeIndex> = Vec::new();
        let mut number = |ix: NodeIndex| {
            *numbered.entry(ix).or_insert_with(|| {
                nodes.push(ix);
                u32::try_from(nodes.len() - 1).unwrap_or(u32::MAX)
            })
        };
        let links: Vec<(u32, u32)> = links
            .into_iter()
            .map(|(a, b)| (number(a), number(b)))
            .collect();
        // Only a consumer with links both in and out can be on a circle. Peeling off
        // the others, each freeing its neighbours, leaves the (usually empty) part worth
        // Tarjan's time, in time linear in the links: first whatever no link points at,
        // then, of the rest, whatever points at nothing.
        let n = nodes.len();
        let links = unpointed_peeled(n, links);
        if links.is_empty() {
            return Vec::new();
        }
        let flipped = links.into_iter().map(|(a, b)| (b, a)).collect();
        let pairs: Vec<(u32, u32)> = unpointed_peeled(n, flipped)
            .into_iter()
            .map(|(a, b)| (b, a))
            .collect();
        // The links' numbers are the nodes' indexes in `sub`; nodes the peel left
        // alone come out of Tarjan as parts of one and are dropped.
        let sub = petgraph::Graph::<(), ()>::from_edges(&pairs);
        let mut cycles: Vec<Cycle> = petgraph::algo::tarjan_scc(&sub)
            .into_iter()
            .filter(|scc| scc.len() > 1)
            .map(|scc| {
                let mut consumers: Vec<ConsumerName> = scc
                    .into_iter()
                    .filter_map(|l| match &self.g[nodes[l.index()]] {
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
            Node::Version { model, version, .. } => {
                format!("{}@{version}", self.version_model_name(*model))
            }
            Node::Model { name, .. } => name.to_string(),
        }
    }

    /// The node's label as paths hold it: a consumer's name is shared with the graph; a
    /// version's label is built once per answer, however many paths pass through it.
    fn shared_label(&self, ix: NodeIndex, labels: &mut Labels) -> Arc<str> {
        match &self.g[ix] {
            Node::Consumer(_, c) => c.name.shared(),
            _ => Arc::clone(labels.entry(ix).or_insert_with(|| self.label(ix).into())),
        }
    }

    /// Orders nodes as answers list them: consumers by name, then versions by model and
    /// version; without building labels.
    fn order_key(&self, ix: NodeIndex) -> (u8, &str, Version) {
        match &self.g[ix] {
            Node::Consumer(_, c) => (0, c.name.as_str(), Version::new(0, 0, 0)),
            Node::Version { model, version, .. } => {
                (1, self.version_model_name(*model).as_str(), *version)
            }
            Node::Model { name, .. } => (2, name.as_str(), Version::new(0, 0, 0)),
        }
    }

    fn target(&self, ix: NodeIndex) -> Target {
        match &self.g[ix] {
            Node::Consumer(_, c) => Target::Consumer(Arc::clone(c)),
            Node::Version { model, version, .. } => Target::Version {
                model: self.version_model_name(*model).clone(),
                version: *version,
            },
            Node::Model { name, .. } => Target::Version {
                model: name.clone(),
                version: Version::new(0, 0, 0),
            },
        }
    }

    /// The path that explains the node at `place` in the walk, from the dependent
    /// towards the dependency.
    fn path(
        &self,
        place: u32,
        visits: &Visits,
        walk: Walk,
        q: &Query,
        labels: &mut Labels,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut at = visits.order[place as usize];
        while let Some((came_from, ex)) = at.via {
            let prev = visits.order[came_from as usize];
            // Walking dependents, `at` depends on `prev`; walking dependencies, the reverse.
            let (from, to) = match walk {
                Walk::Dependents => (at.ix, prev.ix),
                Walk::Dependencies => (prev.ix, at.ix),
            };
            steps.push(self.step(from, to, ex, q, labels));
            at = prev;
        }
        if walk == Walk::Dependencies {
            steps.reverse();
        }
        steps
    }

    fn step(
        &self,
        from: NodeIndex,
        to: NodeIndex,
        ex: EdgeIndex,
        q: &Query,
        labels: &mut Labels,
    ) -> Step {
        let chosen = &self.g[ex];
        let mut evidence: Vec<Evidence> = if self.walk.parallel.contains(&ex) {
            let (a, b) = self.g.edge_endpoints(ex).unwrap_or((from, to));
            self.g
                .edges_connecting(a, b)
                .map(|e| e.weight())
                .filter(|e| e.same_link(chosen))
                .map(|e| self.evidence(e, q))
                .collect()
        } else {
            vec![self.evidence(chosen, q)]
        };
        evidence.retain(|e| q.include_stale || !e.stale);
        evidence.sort_by(|x, y| (x.origin, &x.origin_name).cmp(&(y.origin, &y.origin_name)));
        let (range, derivation) = match chosen.kind {
            Kind::Uses => (self.ranges.get(chosen.range).map(Arc::clone), None),
            Kind::DerivedFrom(derivation) => (None, Some(derivation)),
            Kind::DependsOn => (None, None),
        };
        Step {
            kind: chosen.kind.edge_kind(),
            from: self.shared_label(from, labels),
            to: self.shared_label(to, labels),
            range,
            derivation,
            evidence,
        }
    }

    fn evidence(&self, e: &Edge, q: &Query) -> Evidence {
        Evidence {
            origin: e.origin,
            // Every number an edge holds was given by this table.
            origin_name: self
                .origins
                .get(e.origin_name)
                .map_or_else(|| Arc::from(""), Arc::clone),
            first_seen: e.first_seen(),
            last_seen: e.last_seen(),
            observations: e.observations(),
            stale: e.is_stale(q.now, q.stale_after),
        }
    }
}

/// Of `links` (from, to) among nodes `0..n`, those left after taking away, again and
/// again, every node that no remaining link points at (Kahn's topological peel): what is
/// left is the circles and whatever they lead to.
fn unpointed_peeled(n: usize, links: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    // Links grouped by the node they leave, as offsets into one list (compressed rows).
    let mut start = vec![0u32; n + 1];
    let mut pointed = vec![0u32; n];
    for &(a, b) in &links {
        start[a as usize + 1] += 1;
        pointed[b as usize] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut to = vec![0u32; links.len()];
    for &(a, b) in &links {
        to[fill[a as usize] as usize] = b;
        fill[a as usize] += 1;
    }
    drop(fill);
    let mut gone = vec![false; n];
    let mut peel: Vec<u32> = links
        .iter()
        .map(|&(a, _)| a)
        .filter(|&a| pointed[a as usize] == 0)
        .collect();
    while let Some(i) = peel.pop() {
        let i = i as usize;
        if std::mem::replace(&mut gone[i], true) {
            continue;
        }
        for &m in &to[start[i] as usize..start[i + 1] as usize] {
            pointed[m as usize] -= 1;
            if pointed[m as usize] == 0 {
                peel.push(m);
            }
        }
    }
    links
        .into_iter()
        .filter(|&(a, b)| !gone[a as usize] && !gone[b as usize])
        .collect()
}
