//! The graph's performance layer: what the walks read instead of petgraph's linked
//! edge lists, kept in step with petgraph (the truth) through every change by
//! `InventoryGraph` and checked against it by `Snapshot::indexes_agree` in the graph's
//! tests (`packed_arrivals_answer_as_the_lists_do_through_every_change`, and after every
//! change of the randomised sequences). Why each part exists is its field's comment; how
//! they are kept in step is the module comment of `graph/mod.rs`.

use super::arrivals::Arrivals;
use super::packed::Packed;
use petgraph::stable_graph::EdgeIndex;
use std::collections::HashSet;

#[derive(Debug, Clone, Default)]
pub(super) struct WalkIndex {
    /// Per node index, the edges arriving there: who depends on that node. The same
    /// edges petgraph holds, kept again per node (see `arrivals.rs`), because petgraph
    /// links a node's edges through the edges themselves and a `dependents` walk paid a
    /// cache miss for every edge it looked at; with its hubs' tens of thousands of
    /// dependents, that walk was most of a question's time.
    pub(super) arrivals: Vec<Arrivals>,
    /// The same arrivals laid out in one array for the walks (see `packed.rs`), where
    /// they have not changed since it was laid out.
    pub(super) packed: Packed,
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
