//! What the graph holds of each edge row. Its link is told by the edge's two ends
//! (petgraph's) and, for `uses`, the number of its range among the graph's ranges; its
//! origin's name is a number among the graph's origin names. The row as the rest of the
//! service sees it ([`super::EdgeRecord`], with its ids and shared names) is built on
//! demand: held once per edge it cost 112 bytes with petgraph's links, this costs 72.

use super::arrivals::NO_RANGE;
use crate::domain::{Derivation, EdgeId, EdgeKind, EdgeOrigin};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// The kind of link, with what a `derived_from` link says beyond its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Uses,
    DerivedFrom(Derivation),
    DependsOn,
}

impl Kind {
    pub fn edge_kind(self) -> EdgeKind {
        match self {
            Kind::Uses => EdgeKind::Uses,
            Kind::DerivedFrom(_) => EdgeKind::DerivedFrom,
            Kind::DependsOn => EdgeKind::DependsOn,
        }
    }
}

/// One edge row as the graph holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edge {
    pub id: EdgeId,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub observations: u64,
    /// For a `uses` edge, its range's number among the graph's ranges; [`NO_RANGE`]
    /// for the others.
    pub range: u32,
    /// Its origin's name's number among the graph's origin names.
    pub origin_name: u32,
    pub kind: Kind,
    pub origin: EdgeOrigin,
}

impl Edge {
    pub fn is_stale(&self, now: DateTime<Utc>, stale_after: chrono::Duration) -> bool {
        now - self.last_seen > stale_after
    }

    pub fn depends_on(&self) -> bool {
        self.kind == Kind::DependsOn
    }

    /// Whether two edges between the same two nodes record one link (what
    /// `Link::key` says, without formatting it): ranges are numbered by their text.
    pub fn same_link(&self, other: &Edge) -> bool {
        self.kind.edge_kind() == other.kind.edge_kind() && self.range == other.range
    }

    /// Whether `range` is a number `uses` edges alone hold.
    pub fn range_fits_kind(&self) -> bool {
        (self.kind == Kind::Uses) == (self.range != NO_RANGE)
    }
}

/// Shared values numbered in the order first seen, found again by their text; none is
/// ever dropped: many edges share each (a range like `^2`, a webhook source's name), so
/// the table stays small.
#[derive(Debug)]
pub(super) struct Numbered<T: ?Sized> {
    all: Vec<Arc<T>>,
    numbers: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
}

impl<T: ?Sized> Default for Numbered<T> {
    fn default() -> Self {
        Self {
            all: Vec::new(),
            numbers: HashMap::default(),
        }
    }
}

impl<T: ?Sized> Clone for Numbered<T> {
    fn clone(&self) -> Self {
        Self {
            all: self.all.clone(),
            numbers: self.numbers.clone(),
        }
    }
}

impl<T: ?Sized> Numbered<T> {
    /// The number of the value whose text is `text`, numbering `value` if none has it.
    pub fn number(&mut self, text: &str, value: &Arc<T>) -> u32 {
        if let Some(&n) = self.numbers.get(text) {
            return n;
        }
        let n = u32::try_from(self.all.len()).expect("fewer than 2^32 shared values");
        self.numbers.insert(text.into(), n);
        self.all.push(Arc::clone(value));
        n
    }

    /// The value numbered `n`, if [`Self::number`] gave that number.
    pub fn get(&self, n: u32) -> Option<&Arc<T>> {
        self.all.get(n as usize)
    }

    /// Bytes held, by capacity, with `heap` the bytes behind each value's pointer.
    pub fn footprint(&self, heap: impl Fn(&T) -> usize) -> usize {
        use std::mem::size_of;
        self.all.capacity() * size_of::<Arc<T>>()
            + self.all.iter().map(|v| heap(v)).sum::<usize>()
            + self.numbers.capacity() * (size_of::<Box<str>>() + size_of::<u32>() + 1)
            + self.numbers.keys().map(|k| k.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_with_petgraphs_links_fits_in_72_bytes() {
        assert_eq!(std::mem::size_of::<Option<Edge>>(), 56);
    }

    #[test]
    fn numbered_values_are_found_by_their_text_and_kept_once() {
        let mut t: Numbered<str> = Numbered::default();
        let a: Arc<str> = Arc::from("scan:gateway");
        let again: Arc<str> = Arc::from("scan:gateway");
        assert_eq!(t.number("scan:gateway", &a), 0);
        assert_eq!(t.number("webhook:ci", &Arc::from("webhook:ci")), 1);
        assert_eq!(t.number("scan:gateway", &again), 0);
        assert!(Arc::ptr_eq(t.get(0).unwrap(), &a));
        assert!(t.get(2).is_none());
    }
}
