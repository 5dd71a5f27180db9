//! What the graph holds in memory, representation by representation: an estimate from
//! the capacities of its arrays and maps and the lengths behind its pointers (the
//! allocator's own overhead, and hash tables' control bytes beyond one per slot, not
//! counted), so the inventory benchmark can print bytes per node and per edge for each
//! part and growth stays visible where it happens.

use super::{InventoryGraph, Node};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::mem::size_of;

/// The graph's parts and their estimated bytes.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub nodes: usize,
    pub edges: usize,
    pub parts: Vec<(&'static str, usize)>,
}

impl Footprint {
    pub fn total(&self) -> usize {
        self.parts.iter().map(|(_, b)| b).sum()
    }
}

impl fmt::Display for Footprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        let per = |b: usize, n: usize| b as f64 / n.max(1) as f64;
        writeln!(
            f,
            "graph in memory (estimated): {:.0} MiB for {} nodes and {} edges, {:.0} bytes per edge",
            mib(self.total()),
            self.nodes,
            self.edges,
            per(self.total(), self.edges)
        )?;
        for (part, bytes) in &self.parts {
            writeln!(
                f,
                "  {part:<46} {:>8.1} MiB  {:>6.1} B/node  {:>6.1} B/edge",
                mib(*bytes),
                per(*bytes, self.nodes),
                per(*bytes, self.edges)
            )?;
        }
        Ok(())
    }
}

/// What a B-tree map adds per entry beyond its key and value (its nodes' lengths, edges
/// and slack), roughly: nodes hold up to 11 entries and are half to fully used.
const BTREE_ENTRY_OVERHEAD: usize = 16;

/// A hash map's slots: its capacity, each a key, a value and a control byte.
fn map_bytes<K, V, S>(m: &HashMap<K, V, S>) -> usize {
    m.capacity() * (size_of::<K>() + size_of::<V>() + 1)
}

fn set_bytes<T, S>(s: &HashSet<T, S>) -> usize {
    s.capacity() * (size_of::<T>() + 1)
}

/// An `Arc<str>`'s allocation: its two counts and the text.
fn arc_str(s: &str) -> usize {
    2 * size_of::<usize>() + s.len()
}

impl InventoryGraph {
    /// What each representation holds, estimated (see the module comment).
    pub fn footprint(&self) -> Footprint {
        let (node_slots, edge_slots) = self.g.capacity();
        let index = size_of::<petgraph::stable_graph::EdgeIndex>();
        let node_index = size_of::<petgraph::stable_graph::NodeIndex>();
        let mut parts = vec![
            (
                "petgraph nodes (weights inline)",
                node_slots * (size_of::<Option<Node>>() + 2 * index),
            ),
            (
                "petgraph edges (records inline)",
                edge_slots * (size_of::<Option<super::EdgeRecord>>() + 2 * index + 2 * node_index),
            ),
            ("consumers' records (behind Arc)", self.consumer_heap()),
            ("models' and versions' names", self.model_heap()),
            (
                "edges' origin names (distinct Arc<str>)",
                self.origin_heap(),
            ),
            (
                "id and name indexes (hash maps)",
                map_bytes(&self.consumers)
                    + map_bytes(&self.consumer_names)
                    + self.consumer_names.keys().map(String::len).sum::<usize>()
                    + map_bytes(&self.models)
                    + map_bytes(&self.model_names)
                    + self.model_names.keys().map(String::len).sum::<usize>()
                    + map_bytes(&self.model_versions)
                    + self
                        .model_versions
                        .values()
                        .map(|v| {
                            v.len()
                                * (size_of::<crate::domain::Version>()
                                    + size_of::<super::VersionId>()
                                    + BTREE_ENTRY_OVERHEAD)
                        })
                        .sum::<usize>()
                    + map_bytes(&self.versions)
                    + map_bytes(&self.edges),
            ),
            (
                "ranges",
                self.ranges.capacity() * size_of::<usize>()
                    + self.ranges.len()
                        * (2 * size_of::<usize>() + size_of::<crate::domain::VersionRange>())
                    + map_bytes(&self.range_numbers),
            ),
        ];
        parts.extend(self.walk.footprint());
        Footprint {
            nodes: self.g.node_count(),
            edges: self.g.edge_count(),
            parts,
        }
    }

    fn consumer_heap(&self) -> usize {
        self.g
            .node_weights()
            .map(|n| match n {
                Node::Consumer(_, c) => {
                    2 * size_of::<usize>()
                        + size_of::<crate::domain::Consumer>()
                        + arc_str(c.name.as_str())
                        + c.owner_team.as_str().len()
                        + c.environment.as_str().len()
                        + c.contacts
                            .iter()
                            .map(|e| size_of::<crate::domain::EmailAddress>() + e.as_str().len())
                            .sum::<usize>()
                        + c.webhook_url.as_ref().map_or(0, |u| u.as_str().len())
                }
                _ => 0,
            })
            .sum()
    }

    fn model_heap(&self) -> usize {
        self.g
            .node_weights()
            .map(|n| match n {
                Node::Model(m) => m.name.as_str().len() + m.owner_team.as_str().len(),
                Node::Version(v) => v.model_name.as_str().len(),
                Node::Consumer(..) => 0,
            })
            .sum()
    }

    fn origin_heap(&self) -> usize {
        let mut seen: HashSet<*const u8> = HashSet::new();
        self.g
            .edge_weights()
            .filter(|e| seen.insert(e.origin_name.as_ptr()))
            .map(|e| arc_str(&e.origin_name))
            .sum()
    }
}

impl super::WalkIndex {
    fn footprint(&self) -> Vec<(&'static str, usize)> {
        let arrival = size_of::<super::arrivals::Arrival>();
        let lists = self.arrivals.capacity() * size_of::<super::Arrivals>()
            + self
                .arrivals
                .iter()
                .map(|a| a.heap_capacity() * arrival)
                .sum::<usize>();
        vec![
            ("arrivals (per-node lists)", lists),
            ("packed arrivals (the walks' copy)", self.packed.footprint()),
            (
                "parallel and looping edge sets",
                set_bytes(&self.parallel) + set_bytes(&self.looping),
            ),
        ]
    }
}
