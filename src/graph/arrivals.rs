//! What each node keeps of the edges arriving at it: who depends on it. A `dependents`
//! walk reads these rather than petgraph's edge lists, which link a node's edges
//! through the edges themselves and cost a cache miss for every edge looked at.

use petgraph::stable_graph::{EdgeIndex, NodeIndex};

/// An edge as the node it arrives at keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Arrival {
    /// The dependent.
    pub from: NodeIndex,
    pub edge: EdgeIndex,
    /// For a `uses` edge, its range's number among the graph's ranges (see
    /// `InventoryGraph::ranges`), so that which versions a hub's direct users reach is
    /// decided without reading each edge; [`NO_RANGE`] for other edges.
    pub range: u32,
    /// Whether anything depends on `from` in turn (it has arrivals of its own), so that
    /// a walk reaching a consumer nobody depends on does not look up its arrivals: most
    /// of a hub's dependents are such leaves, and each lookup was a cache miss.
    pub from_depended_on: bool,
    /// Whether the edge is among the graph's `looping` ones (a `depends_on` link that
    /// may lie on a circle), so that a walk following tens of thousands of links asks no
    /// set about each.
    pub looping: bool,
    /// The edge's `last_seen` as [`super::stamp`] gives it, so a walk can skip stale
    /// edges without reading them.
    pub last_seen: i64,
    /// The dependent's [`sort_prefix`], so that choosing which of a hub's tens of
    /// thousands of dependents an answer lists reads no node (and its name) for most.
    pub key: u64,
}

impl Arrival {
    /// A stand-in for a slot about to be filled.
    pub fn empty() -> Arrival {
        Arrival {
            from: NodeIndex::end(),
            edge: EdgeIndex::end(),
            range: NO_RANGE,
            from_depended_on: false,
            looping: false,
            last_seen: 0,
            key: 0,
        }
    }
}

/// The `range` of an arrival whose edge has none.
pub(super) const NO_RANGE: u32 = u32::MAX;

/// The first eight bytes of a name, big-endian and padded with zeros: ordering these
/// orders names as strings do, except among names that share eight bytes, which
/// compare equal here and must be told apart by their whole names.
pub(super) fn sort_prefix(name: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = name.len().min(8);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

/// A node's arrivals, in the order they came. Most nodes have none or one; that one is
/// kept inline (the enum is no larger than one arrival), so a walk reaching the node
/// reads one place in memory rather than two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Arrivals {
    #[default]
    None,
    One(Arrival),
    Many(Vec<Arrival>),
}

impl Arrivals {
    /// The arrivals held on the heap (a list of more than one), by capacity.
    pub(super) fn heap_capacity(&self) -> usize {
        match self {
            Arrivals::Many(v) => v.capacity(),
            _ => 0,
        }
    }

    /// The arrivals of `list`, in its order.
    pub fn from_slice(list: &[Arrival]) -> Self {
        match list {
            [] => Arrivals::None,
            [one] => Arrivals::One(*one),
            many => Arrivals::Many(many.to_vec()),
        }
    }

    /// The arrivals of `list`, in its order, kept in `list` itself when there are several.
    pub fn from_vec(list: Vec<Arrival>) -> Self {
        match list.len() {
            0 | 1 => Self::from_slice(&list),
            _ => Arrivals::Many(list),
        }
    }

    pub fn as_slice(&self) -> &[Arrival] {
        match self {
            Arrivals::None => &[],
            Arrivals::One(a) => std::slice::from_ref(a),
            Arrivals::Many(v) => v,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn as_mut_slice(&mut self) -> &mut [Arrival] {
        match self {
            Arrivals::None => &mut [],
            Arrivals::One(a) => std::slice::from_mut(a),
            Arrivals::Many(v) => v,
        }
    }

    pub fn push(&mut self, a: Arrival) {
        match self {
            Arrivals::None => *self = Arrivals::One(a),
            Arrivals::One(first) => *self = Arrivals::Many(vec![*first, a]),
            Arrivals::Many(v) => v.push(a),
        }
    }

    /// Removes the arrival at `at`, keeping the others in order: walks meet a node's
    /// dependents in the order they arrived, which keeps the path chosen to explain
    /// each stable.
    pub fn remove(&mut self, at: usize) -> Arrival {
        match self {
            Arrivals::One(a) if at == 0 => {
                let gone = *a;
                *self = Arrivals::None;
                gone
            }
            Arrivals::Many(v) => {
                let gone = v.remove(at);
                if let [only] = v.as_slice() {
                    *self = Arrivals::One(*only);
                }
                gone
            }
            _ => panic!("no arrival at {at}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(n: usize) -> Arrival {
        Arrival {
            from: NodeIndex::new(n),
            edge: EdgeIndex::new(n),
            range: NO_RANGE,
            from_depended_on: false,
            looping: false,
            last_seen: n as i64,
            key: n as u64,
        }
    }

    #[test]
    fn sort_prefixes_order_as_the_names_do_or_tie() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "abcdefgh",
            "abcdefghi",
            "abcdefgz",
            "b",
            "payments-api",
            "payments-apj",
            "z",
        ];
        for x in names {
            for y in names {
                let (px, py) = (sort_prefix(x), sort_prefix(y));
                assert!(
                    px.cmp(&py) == x.cmp(y)
                        || (px == py && x[..8.min(x.len())] == y[..8.min(y.len())]),
                    "{x} {y}"
                );
            }
        }
    }

    #[test]
    fn arrivals_keep_their_order_through_pushes_and_removals() {
        assert_eq!(std::mem::size_of::<Arrival>(), 32);
        assert_eq!(std::mem::size_of::<Arrivals>(), 32);
        let mut a = Arrivals::default();
        let mut model = Vec::new();
        for n in 0..4 {
            a.push(arrival(n));
            model.push(arrival(n));
            assert_eq!(a.as_slice(), model.as_slice());
        }
        for at in [1, 2, 0, 0] {
            assert_eq!(a.remove(at), model.remove(at));
            assert_eq!(a.as_slice(), model.as_slice());
        }
        assert_eq!(a, Arrivals::None);
        a.push(arrival(7));
        assert!(matches!(a, Arrivals::One(_)));
        a.as_mut_slice()[0].last_seen = 9;
        assert_eq!(a.as_slice()[0].last_seen, 9);
        for n in 0..4 {
            let list: Vec<Arrival> = (0..n).map(arrival).collect();
            assert_eq!(Arrivals::from_slice(&list).as_slice(), list.as_slice());
        }
        assert!(matches!(
            Arrivals::from_slice(&[arrival(1)]),
            Arrivals::One(_)
        ));
    }
}
