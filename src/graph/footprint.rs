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
                edge_slots * (size_of::<Option<super::Edge>>() + 2 * index + 2 * node_index),
            ),
            ("consumers' records (behind Arc)", self.consumer_heap()),
            ("models' and versions' names", self.model_heap()),
            (
                "consumers' teams and environments (shared)",
                self.teams
                    .iter()
                    .map(|t| arc_str(t.as_str()))
                    .chain(self.environments.iter().map(|e| arc_str(e.as_str())))
                    .sum::<usize>()
                    + set_bytes(&self.teams)
                    + set_bytes(&self.environments),
            ),
            (
                "models' owner teams (numbered)",
                self.model_teams.footprint(|t| arc_str(t.as_str())),
            ),
            (
                "edges' origin names (numbered)",
                self.origins.footprint(arc_str),
            ),
            (
                "id and name indexes (hash maps)",
                self.consumers.footprint()
                    + self.consumer_names.footprint()
                    + self.models.footprint()
                    + self.model_names.footprint()
                    + map_bytes(&self.model_versions)
                    + self
                        .model_versions
                        .values()
                        .map(|v| v.len() * size_of::<(crate::domain::Version, super::VersionId)>())
                        .sum::<usize>()
                    + self.versions.footprint()
                    + self.edges.footprint(),
            ),
            (
                "ranges",
                self.ranges.footprint(|_| {
                    2 * size_of::<usize>() + size_of::<crate::domain::VersionRange>()
                }),
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

    /// Names are shared (a version's model name is its model's): each counted once.
    fn model_heap(&self) -> usize {
        let mut seen: HashSet<*const u8> = HashSet::new();
        let mut once = |name: &str| {
            if seen.insert(name.as_ptr()) {
                arc_str(name)
            } else {
                0
            }
        };
        self.g
            .node_weights()
            .map(|n| match n {
                Node::Model { name, .. } => once(name.as_str()),
                Node::Version { .. } | Node::Consumer(..) => 0,
            })
            .sum()
    }
}

impl super::WalkIndex {
    fn footprint(&self) -> Vec<(&'static str, usize)> {
        let arrival = size_of::<super::arrivals::Arrival>();
        let lists = self.lists.capacity()
            * (size_of::<petgraph::stable_graph::NodeIndex>()
                + size_of::<super::arrivals::Arrivals>()
                + 1)
            + self
                .lists
                .values()
                .map(|a| a.heap_capacity() * arrival)
                .sum::<usize>();
        vec![
            ("arrivals changed since packing (lists)", lists),
            ("arrivals packed (one array)", self.packed.footprint()),
            (
                "parallel and looping edge sets",
                set_bytes(&self.parallel) + set_bytes(&self.looping),
            ),
        ]
    }
}
