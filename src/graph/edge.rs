//! What the graph holds of each edge row. Its link is told by the edge's two ends
//! (petgraph's) and, for `uses`, the number of its range among the graph's ranges; its
//! origin's name is a number among the graph's origin names. The row as the rest of the
//! service sees it ([`super::EdgeRecord`], with its ids and shared names) is built on
//! demand: held once per edge it cost 112 bytes with petgraph's links, this costs 56.
//! Its times are microseconds since the epoch (PostgreSQL's precision, and every
//! instant chrono can hold fits), its count of observations 40 bits wide.

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
    first_seen: i64,
    last_seen: i64,
    /// For a `uses` edge, its range's number among the graph's ranges; [`NO_RANGE`]
    /// for the others.
    pub range: u32,
    /// Its origin's name's number among the graph's origin names.
    pub origin_name: u32,
    /// The low 32 bits of its observations, and the next 8 in `observations_high`.
    observations_low: u32,
    observations_high: u8,
    pub kind: Kind,
    pub origin: EdgeOrigin,
}

/// The most observations an edge holds: a trillion, where a scan counts one a request.
const MAX_OBSERVATIONS: u64 = (1 << 40) - 1;

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn instant(micros: i64) -> DateTime<Utc> {
    // Every value here came from `micros`, so it is in chrono's range.
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Edge {
    /// An edge row's evidence and numbered parts, its times cut to the microsecond.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: EdgeId,
        kind: Kind,
        range: u32,
        origin: EdgeOrigin,
        origin_name: u32,
        first_seen: DateTime<Utc>,
        last_seen: DateTime<Utc>,
        observations: u64,
    ) -> Self {
        let observations = observations.min(MAX_OBSERVATIONS);
        Self {
            id,
            first_seen: micros(first_seen),
            last_seen: micros(last_seen),
            range,
            origin_name,
            observations_low: observations as u32,
            observations_high: (observations >> 32) as u8,
            kind,
            origin,
        }
    }

    pub fn first_seen(&self) -> DateTime<Utc> {
        instant(self.first_seen)
    }

    pub fn last_seen(&self) -> DateTime<Utc> {
        instant(self.last_seen)
    }

    pub fn observations(&self) -> u64 {
        u64::from(self.observations_high) << 32 | u64::from(self.observations_low)
    }

    pub fn is_stale(&self, now: DateTime<Utc>, stale_after: chrono::Duration) -> bool {
        now - self.last_seen() > stale_after
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
        self.number_made(text, || Arc::clone(value))
    }

    /// [`Self::number`], with the value made only if none has the text.
    pub fn number_made(&mut self, text: &str, make: impl FnOnce() -> Arc<T>) -> u32 {
        if let Some(&n) = self.numbers.get(text) {
            return n;
        }
        let n = u32::try_from(self.all.len()).expect("fewer than 2^32 shared values");
        self.numbers.insert(text.into(), n);
        self.all.push(make());
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
    fn an_edge_with_petgraphs_links_fits_in_56_bytes() {
        assert_eq!(std::mem::size_of::<Option<Edge>>(), 40);
    }

    #[test]
    fn an_edge_keeps_its_times_to_the_microsecond_and_its_count_to_a_trillion() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let e = Edge::new(
            EdgeId(1),
            Kind::Uses,
            0,
            EdgeOrigin::Scan,
            0,
            at("0001-01-01T00:00:00.000001Z"),
            at("9999-12-31T23:59:59.999999999Z"),
            (1 << 39) + 5,
        );
        assert_eq!(e.first_seen(), at("0001-01-01T00:00:00.000001Z"));
        assert_eq!(e.last_seen(), at("9999-12-31T23:59:59.999999Z"));
        assert_eq!(e.observations(), (1 << 39) + 5);
        let most = Edge::new(
            EdgeId(1),
            Kind::DependsOn,
            NO_RANGE,
            EdgeOrigin::Api,
            0,
            at("2026-12-07T00:00:00Z"),
            at("2026-12-07T00:00:00Z"),
            u64::MAX,
        );
        assert_eq!(most.observations(), MAX_OBSERVATIONS);
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
