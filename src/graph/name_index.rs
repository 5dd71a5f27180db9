//! Names to the nodes that bear them. A table of node indexes, hashed by the name each
//! node holds: 5 bytes a slot, where a map keyed by a shared name (16 bytes), giving an
//! id (8), took 25, and at two million consumers and a million models the two maps were
//! 150 MB. The price is that the table reads a node's name to compare or to grow, which
//! it does for one lookup or for a growth once in a while.
//!
//! Each entry is hashed by its node's name as it was when inserted, so a node's entry is
//! removed before its name changes or it goes, and inserted again after.

use hashbrown::HashTable;
use petgraph::stable_graph::NodeIndex;
use std::hash::BuildHasher;

#[derive(Debug, Clone, Default)]
pub(super) struct NameIndex {
    table: HashTable<NodeIndex>,
    hasher: foldhash::fast::RandomState,
}

impl NameIndex {
    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The node named `name`, `name_of` giving each node's name.
    pub fn get<'g>(&self, name: &str, name_of: impl Fn(NodeIndex) -> &'g str) -> Option<NodeIndex> {
        self.table
            .find(self.hash(name), |&ix| name_of(ix) == name)
            .copied()
    }

    /// Makes `ix` the node named `name` (its name, as `name_of` gives it), in place of
    /// any other node that had the name.
    pub fn insert<'g>(
        &mut self,
        name: &str,
        ix: NodeIndex,
        name_of: impl Fn(NodeIndex) -> &'g str,
    ) {
        let hasher = &self.hasher;
        match self.table.entry(
            hasher.hash_one(name),
            |&other| name_of(other) == name,
            |&other| hasher.hash_one(name_of(other)),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut held) => *held.get_mut() = ix,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(ix);
            }
        }
    }

    /// Removes the entry for `name` if it is node `ix`'s (another node may have taken
    /// the name since).
    pub fn remove<'g>(
        &mut self,
        name: &str,
        ix: NodeIndex,
        name_of: impl Fn(NodeIndex) -> &'g str,
    ) {
        if let Ok(held) = self.table.find_entry(self.hash(name), |&other| {
            other == ix && name_of(other) == name
        }) {
            held.remove();
        }
    }

    /// Room for `more` names beyond those held, so a load grows the table once.
    pub fn reserve<'g>(&mut self, more: usize, name_of: impl Fn(NodeIndex) -> &'g str) {
        let hasher = &self.hasher;
        self.table.reserve(more, |&ix| hasher.hash_one(name_of(ix)));
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Its slots' bytes: a node index and a control byte each.
    pub fn footprint(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<NodeIndex>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lead_to_their_nodes_through_renames_and_takeovers() {
        let mut names = ["a".to_string(), "b".to_string(), "c".to_string()];
        let ix = NodeIndex::new;
        let mut t = NameIndex::default();
        for i in 0..3 {
            let of = |n: NodeIndex| names[n.index()].as_str();
            t.insert(&names[i].clone(), ix(i), of);
        }
        let of = |n: NodeIndex| names[n.index()].as_str();
        assert_eq!(t.get("b", of), Some(ix(1)));
        assert_eq!(t.get("z", of), None);
        // Node 1 is renamed "z": its entry goes first, then comes back under the new name.
        t.remove("b", ix(1), of);
        names[1] = "z".into();
        let of = |n: NodeIndex| names[n.index()].as_str();
        t.insert("z", ix(1), of);
        assert_eq!((t.get("b", of), t.get("z", of)), (None, Some(ix(1))));
        // Node 2 is renamed "a", taking it from node 0; node 0's removal then leaves
        // node 2's entry.
        t.remove("c", ix(2), of);
        names[2] = "a".into();
        let of = |n: NodeIndex| names[n.index()].as_str();
        t.insert("a", ix(2), of);
        t.remove("a", ix(0), of);
        assert_eq!(t.get("a", of), Some(ix(2)));
        t.reserve(1_000, of);
        assert_eq!(t.get("z", of), Some(ix(1)));
        assert_eq!(t.len(), 3 - 1);
    }
}
