//! Row ids to places in the graph. Database ids come from sequences and so are dense: a
//! vector indexed by id holds each place in 4 bytes, where a hash map of ten million
//! edges took 17 bytes a slot over twice as many slots. An id far beyond the others (or
//! below zero) goes to a map beside the vector, so a stray id costs one entry, not a
//! vector's worth of empty slots.

use super::{ConsumerId, EdgeId, ModelId, VersionId};
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use std::collections::HashMap;

/// A row id the index is keyed by.
pub(super) trait RowId: Copy {
    fn raw(self) -> i64;
    fn of(raw: i64) -> Self;
}

macro_rules! row_ids {
    ($($id:ident),*) => {$(
        impl RowId for $id {
            fn raw(self) -> i64 {
                self.0
            }
            fn of(raw: i64) -> Self {
                Self(raw)
            }
        }
    )*};
}
row_ids!(ConsumerId, EdgeId, ModelId, VersionId);

/// A place in the graph, with a value that is none.
pub(super) trait Place: Copy + Eq {
    fn none() -> Self;
}

impl Place for NodeIndex {
    fn none() -> Self {
        NodeIndex::end()
    }
}

impl Place for EdgeIndex {
    fn none() -> Self {
        EdgeIndex::end()
    }
}

/// How far past the entries held the vector may reach for a new id: twice their number,
/// and a little more so a small graph grows it without going to the map.
fn reach(len: usize) -> usize {
    2 * len + 4_096
}

#[derive(Debug, Clone)]
pub(super) struct IdIndex<K, P> {
    dense: Vec<P>,
    sparse: HashMap<i64, P, foldhash::fast::RandomState>,
    len: usize,
    key: std::marker::PhantomData<K>,
}

impl<K, P> Default for IdIndex<K, P> {
    fn default() -> Self {
        Self {
            dense: Vec::new(),
            sparse: HashMap::default(),
            len: 0,
            key: std::marker::PhantomData,
        }
    }
}

impl<K: RowId, P: Place> IdIndex<K, P> {
    fn slot(&self, id: K) -> Option<usize> {
        usize::try_from(id.raw()).ok()
    }

    /// An id is held in one of the two: the map keeps an id it took even once the
    /// vector has grown past it.
    pub fn get(&self, id: &K) -> Option<&P> {
        match self.slot(*id).and_then(|i| self.dense.get(i)) {
            Some(p) if *p != P::none() => Some(p),
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&id.raw()),
        }
    }

    /// Puts `place` at `id`, giving back what was there.
    pub fn insert(&mut self, id: K, place: P) -> Option<P> {
        debug_assert!(place != P::none());
        let in_map = !self.sparse.is_empty() && self.sparse.contains_key(&id.raw());
        let old = match self.slot(id) {
            Some(i) if !in_map && i < self.dense.len() => {
                Some(std::mem::replace(&mut self.dense[i], place)).filter(|p| *p != P::none())
            }
            Some(i) if !in_map && i < reach(self.len) => {
                // Grown by an eighth rather than doubled: ids arrive in order, and a
                // doubled vector of ten million is 40 MB held for nothing.
                if i >= self.dense.capacity() {
                    self.dense
                        .reserve_exact(i + 1 - self.dense.len() + self.dense.len() / 8);
                }
                self.dense.resize(i + 1, P::none());
                self.dense[i] = place;
                None
            }
            _ => self.sparse.insert(id.raw(), place),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, id: &K) -> Option<P> {
        let old = match self.slot(*id).and_then(|i| self.dense.get_mut(i)) {
            Some(p) if *p != P::none() => Some(std::mem::replace(p, P::none())),
            _ => self.sparse.remove(&id.raw()),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every id and its place, those in the vector first, in order.
    pub fn iter(&self) -> impl Iterator<Item = (K, P)> + '_ {
        self.dense
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != P::none())
            .map(|(i, &p)| (K::of(i as i64), p))
            .chain(self.sparse.iter().map(|(&id, &p)| (K::of(id), p)))
    }

    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Bytes held, by capacity.
    pub fn footprint(&self) -> usize {
        use std::mem::size_of;
        self.dense.capacity() * size_of::<P>()
            + self.sparse.capacity() * (size_of::<i64>() + size_of::<P>() + 1)
    }
}

impl<K: RowId, P: Place> std::ops::Index<&K> for IdIndex<K, P> {
    type Output = P;

    /// The place at `id`, which must be held (as a map's index is).
    fn index(&self, id: &K) -> &P {
        self.get(id).expect("an id the index holds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_id_index_answers_as_a_map_whatever_the_ids() {
        // Dense ids, a stray far beyond them, negative ones, an id in the vector's
        // reach while the map holds it: checked against a map through every change.
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut index: IdIndex<EdgeId, EdgeIndex> = IdIndex::default();
        let mut model: BTreeMap<i64, EdgeIndex> = BTreeMap::new();
        for step in 0..20_000_u32 {
            let id = match next(10) {
                0 => next(1 << 40) as i64,
                1 => -(next(100) as i64),
                _ => next(6_000) as i64,
            };
            if next(4) == 0 {
                assert_eq!(index.remove(&EdgeId(id)), model.remove(&id), "step {step}");
            } else {
                let place = EdgeIndex::new(step as usize);
                assert_eq!(
                    index.insert(EdgeId(id), place),
                    model.insert(id, place),
                    "step {step}"
                );
            }
            assert_eq!(index.get(&EdgeId(id)), model.get(&id), "step {step}");
            assert_eq!(index.len(), model.len(), "step {step}");
        }
        let mut all: Vec<(i64, EdgeIndex)> = index.iter().map(|(k, p)| (k.0, p)).collect();
        all.sort();
        assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        assert!(
            index.sparse.len() < index.len(),
            "most ids sit in the vector"
        );
    }
}
