//! The graph's performance layer: what the walks read instead of petgraph's linked
//! edge lists, kept in step with petgraph (the truth) through every change by
//! `InventoryGraph` and checked against it by `Snapshot::indexes_agree` in the graph's
//! tests (`packed_arrivals_answer_as_the_lists_do_through_every_change`, and after every
//! change of the randomised sequences). Why each part exists is its field's comment; how
//! they are kept in step is the module comment of `graph/mod.rs`.

use super::arrivals::{Arrival, Arrivals};
use super::packed::{At, Packed};
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default)]
pub(super) struct WalkIndex {
    /// Per node, the edges arriving there: who depends on that node. The same edges
    /// petgraph holds, kept again per node (see `arrivals.rs`), because petgraph links a
    /// node's edges through the edges themselves and a `dependents` walk paid a cache
    /// miss for every edge it looked at; with its hubs' tens of thousands of dependents,
    /// that walk was most of a question's time. Laid out in one array (see `packed.rs`)
    /// for every node whose arrivals have not changed since; the others, and only they,
    /// have a list here (one copy of each arrival, not two: at ten million edges the
    /// lists beside the packed array cost 460 MB).
    pub(super) packed: Packed,
    pub(super) lists: HashMap<NodeIndex, Arrivals, foldhash::fast::RandomState>,
    /// Edges that share both ends with another edge: one link reported by several
    /// origins, whose evidence an answer gathers. Few edges have one, and knowing which
    /// spares an answer reading every edge of each node it explains.
    pub(super) parallel: HashSet<EdgeIndex>,
    /// The `depends_on` edges that may lie on a circle of consumers: after a load,
    /// exactly those whose two ends are in one strongly connected part of the
    /// `depends_on` links, and kept a superset of that through changes. A walk looks
    /// for circles among these alone, not among the tens of thousands of links a hub
    /// question follows, because a circle's links all lie in one such part.
    pub(super) looping: HashSet<EdgeIndex, foldhash::fast::RandomState>,
    /// Set when a change may have closed a circle `looping` does not cover yet: until
    /// [`InventoryGraph::set_revision`](super::InventoryGraph::set_revision) finds the circles again, walks treat every `depends_on`
    /// edge as one that may loop, as slow as that is.
    pub(super) loops_unknown: bool,
}

impl WalkIndex {
    /// The arrivals at `ix`, from wherever they are kept.
    pub fn at(&self, ix: NodeIndex) -> At<'_> {
        let span = self.packed.span(ix);
        if span.is_packed() {
            self.packed.list(span)
        } else {
            At::Live(self.list(ix))
        }
    }

    /// The list of an unpacked node.
    pub fn list(&self, ix: NodeIndex) -> &[Arrival] {
        self.lists
            .get(&ix)
            .map(Arrivals::as_slice)
            .unwrap_or_default()
    }

    /// The arrivals at `ix` are about to change: from now on they are its list's, which
    /// takes over their packed copy if they have one, and the packed arrivals of the
    /// edges `leaving` it (all it had when packed, among others) say so.
    pub fn unpack(&mut self, ix: NodeIndex, leaving: impl Iterator<Item = EdgeIndex>) {
        let span = self.packed.span(ix);
        if span.is_packed() {
            let list = Arrivals::from_vec(self.packed.list(span).iter().collect());
            self.lists.insert(ix, list);
        }
        self.packed.unpack(ix, leaving);
    }

    /// The list of a node [`Self::unpack`] was told of.
    pub fn list_mut(&mut self, ix: NodeIndex) -> &mut Arrivals {
        debug_assert!(!self.packed.span(ix).is_packed());
        self.lists.entry(ix).or_default()
    }

    /// Lays every node's arrivals (`nodes` of them) out afresh in one array.
    pub fn repack(&mut self, nodes: usize, edge_bound: usize) {
        self.packed = Packed::pack(nodes, |i| self.at(NodeIndex::new(i)), edge_bound);
        self.lists.clear();
    }

    /// Every node's arrivals moved to its list, as if nothing had been packed: what the
    /// tests compare the packed walks with.
    #[cfg(test)]
    pub fn unpack_all(&mut self, nodes: usize) {
        for i in 0..nodes {
            let ix = NodeIndex::new(i);
            self.unpack(ix, std::iter::empty());
        }
        self.packed = Packed::default();
    }
}

/// The edges among `lists` (each node's arrivals) that share both ends with another.
pub(super) fn parallel_edges<'a>(lists: impl Iterator<Item = &'a [Arrival]>) -> HashSet<EdgeIndex> {
    let mut parallel = HashSet::new();
    let mut ends: Vec<(NodeIndex, EdgeIndex)> = Vec::new();
    for list in lists.filter(|l| l.len() > 1) {
        ends.clear();
        ends.extend(list.iter().map(|a| (a.from, a.edge)));
        ends.sort_unstable();
        for pair in ends.windows(2) {
            if pair[0].0 == pair[1].0 {
                parallel.extend([pair[0].1, pair[1].1]);
            }
        }
    }
    parallel
}
