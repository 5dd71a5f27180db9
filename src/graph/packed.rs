//! The arrivals, packed: every node's arrivals in one array, node after node, in the
//! order a breadth-first walk from the most depended-on nodes meets them, each arrival
//! carrying where its dependent's own arrivals lie.
//!
//! A hub question expands tens of thousands of dependents. From the per-node lists
//! (`arrivals.rs`) each expansion looked up the dependent's slot and then, when it had
//! several arrivals, followed the slot to the heap: two cache misses one after the other,
//! about half of a cold hub answer. Here the arrival that reaches a dependent already says
//! where the dependent's arrivals are, and a walk from a big model reads them roughly in
//! the order they were laid out.
//!
//! This is the only copy of a packed node's arrivals. It is laid out at load and again
//! when enough has changed (see [`Packed::worth_repacking`]); in between, a node whose
//! arrivals change is *unpacked*: its arrivals move to a list of its own (`WalkIndex`),
//! its span says so, the packed arrivals that reach it say so, and walks read it from its
//! list. Fields of an arrival that change in place (a time, a name's key, a flag) are
//! written here and, for an unpacked node, to its list.
//!
//! Each arrival is held in two parts, in two arrays at the same places: its [`Hot`] part
//! (what a walk beyond the listed nodes reads) and its [`Cold`] part (the rest). Neither
//! repeats the other: a whole [`Arrival`] is put together when asked for.

use super::arrivals::Arrival;
use petgraph::stable_graph::{EdgeIndex, NodeIndex};

/// Where a node's packed arrivals lie in [`Packed`]'s array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub at: u32,
    pub len: u32,
}

impl Span {
    /// A node whose arrivals are read from its list: they changed since packing, or the
    /// node came after it.
    pub const UNPACKED: Span = Span {
        at: 0,
        len: u32::MAX,
    };

    pub fn is_packed(self) -> bool {
        self != Self::UNPACKED
    }
}

/// What a walk beyond the listed nodes reads of an arrival, kept apart from the rest of
/// it (16 bytes rather than 32): the dependent, where its own arrivals lie, and the two
/// flags that decide whether to go on from it and whether to look for a circle. Four of
/// these share a cache line, so most dependents' arrivals are one line read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hot {
    pub from: NodeIndex,
    pub from_span: Span,
    flags: u32,
}

const DEPENDED_ON: u32 = 1;
const LOOPING: u32 = 2;

/// The rest of a packed arrival: what listing, staleness and ranges need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cold {
    pub edge: EdgeIndex,
    pub range: u32,
    pub last_seen: i64,
    pub key: u64,
}

impl Cold {
    fn of(a: &Arrival) -> Self {
        Self {
            edge: a.edge,
            range: a.range,
            last_seen: a.last_seen,
            key: a.key,
        }
    }
}

/// The arrival whose parts are `h` and `c`.
#[inline(always)]
pub(super) fn whole(h: &Hot, c: &Cold) -> Arrival {
    Arrival {
        from: h.from,
        edge: c.edge,
        range: c.range,
        from_depended_on: !h.leaf(),
        looping: h.looping(),
        last_seen: c.last_seen,
        key: c.key,
    }
}

impl Hot {
    fn of(a: &Arrival, from_span: Span) -> Self {
        Self {
            from: a.from,
            from_span,
            flags: u32::from(a.from_depended_on) * DEPENDED_ON + u32::from(a.looping) * LOOPING,
        }
    }

    /// Whether nothing depends on the dependent (see `Arrival::from_depended_on`).
    pub fn leaf(self) -> bool {
        self.flags & DEPENDED_ON == 0
    }

    /// See `Arrival::looping`.
    pub fn looping(self) -> bool {
        self.flags & LOOPING != 0
    }
}

/// No place in the packed array.
const NOWHERE: u32 = u32::MAX;

#[derive(Debug, Clone, Default)]
pub(super) struct Packed {
    /// Every packed arrival's [`Cold`] part, node after node.
    cold: Vec<Cold>,
    /// The same arrivals' [`Hot`] parts, in the same places.
    hot: Vec<Hot>,
    /// Per node index, where its arrivals lie.
    spans: Vec<Span>,
    /// Per edge index, where its arrival lies, so that a change to an edge or to its
    /// dependent reaches the packed copy without searching a hub's list.
    places: Vec<u32>,
    /// Changes to nodes' arrivals since packing.
    changes: usize,
    /// Whether one of them unpacked a long list: what the biggest questions read.
    long_unpacked: bool,
}

/// A list this long, unpacked, makes a repack come sooner: hubs are what packing is for.
const LONG: u32 = 1_024;

impl Packed {
    /// Its arrays' bytes, by capacity.
    pub(super) fn footprint(&self) -> usize {
        use std::mem::size_of;
        self.cold.capacity() * size_of::<Cold>()
            + self.hot.capacity() * size_of::<Hot>()
            + self.spans.capacity() * size_of::<Span>()
            + self.places.capacity() * size_of::<u32>()
    }

    /// Packs the arrivals of nodes `0..n`, `live(i)` giving node `i`'s. Lists are laid
    /// out breadth-first along the arrivals, from the longest list first and then from
    /// the longest left, each node's dependents in the order walks meet them (newest
    /// first), so that a big question reads its dependents' arrivals close to where it
    /// read the last.
    pub fn pack<'a>(n: usize, live: impl Fn(usize) -> At<'a>, edge_bound: usize) -> Self {
        let mut seeds: Vec<u32> = (0..n)
            .filter(|&i| !live(i).is_empty())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        seeds.sort_by_key(|&i| std::cmp::Reverse(live(i as usize).len()));
        let total: usize = seeds.iter().map(|&i| live(i as usize).len()).sum();
        let mut spans = vec![Span { at: 0, len: 0 }; n];
        let mut placed = vec![false; n];
        let mut cold: Vec<Cold> = Vec::with_capacity(total);
        // Each hot part learns its dependent's span once every node is placed.
        let mut hot: Vec<Hot> = Vec::with_capacity(total);
        let mut queue = std::collections::VecDeque::new();
        for seed in seeds {
            if std::mem::replace(&mut placed[seed as usize], true) {
                continue;
            }
            queue.push_back(seed as usize);
            while let Some(i) = queue.pop_front() {
                let list = live(i);
                spans[i] = Span {
                    at: u32::try_from(cold.len()).expect("fewer than 2^32 arrivals"),
                    len: u32::try_from(list.len()).expect("fewer than 2^32 arrivals"),
                };
                list.append_to(&mut hot, &mut cold);
                for k in (0..list.len()).rev() {
                    let from = list.dependent(k).index();
                    if from < n && !placed[from] && !live(from).is_empty() {
                        placed[from] = true;
                        queue.push_back(from);
                    }
                }
            }
        }
        let mut places = vec![NOWHERE; edge_bound];
        for (at, (h, c)) in hot.iter_mut().zip(&cold).enumerate() {
            h.from_span = spans.get(h.from.index()).copied().unwrap_or(Span::UNPACKED);
            if let Some(place) = places.get_mut(c.edge.index()) {
                *place = u32::try_from(at).unwrap_or(NOWHERE);
            }
        }
        Self {
            cold,
            hot,
            spans,
            places,
            changes: 0,
            long_unpacked: false,
        }
    }

    /// Where the node's packed arrivals lie, [`Span::UNPACKED`] when they are to be read
    /// from its list.
    pub fn span(&self, ix: NodeIndex) -> Span {
        self.spans
            .get(ix.index())
            .copied()
            .unwrap_or(Span::UNPACKED)
    }

    /// The arrivals a packed span covers.
    pub fn list(&self, span: Span) -> At<'_> {
        debug_assert!(span.is_packed());
        let range = span.at as usize..span.at as usize + span.len as usize;
        At::Packed(
            self.hot.get(range.clone()).unwrap_or_default(),
            self.cold.get(range).unwrap_or_default(),
        )
    }

    /// Something of the first hot part a packed span covers (0 for none), read to start
    /// its cache line on its way.
    pub fn first_read(&self, span: Span) -> u32 {
        if !span.is_packed() || span.len == 0 {
            return 0;
        }
        self.hot
            .get(span.at as usize)
            .map_or(0, |h| h.from.index() as u32)
    }

    /// The node's arrivals changed: walks read them from its list from now on, and the
    /// packed arrivals of the edges `leaving` it (all it had when packed, among others)
    /// say so.
    pub fn unpack(&mut self, ix: NodeIndex, leaving: impl Iterator<Item = EdgeIndex>) {
        self.changes += 1;
        let Some(span) = self.spans.get_mut(ix.index()) else {
            return;
        };
        if !span.is_packed() {
            return;
        }
        self.long_unpacked |= span.len >= LONG;
        *span = Span::UNPACKED;
        for ex in leaving {
            if let Some(&at) = self.places.get(ex.index())
                && let Some(h) = self.hot.get_mut(at as usize)
            {
                h.from_span = Span::UNPACKED;
            }
        }
    }

    /// Changes a field of edge `ex`'s packed arrival in place, if it has one.
    pub fn edit(&mut self, ex: EdgeIndex, edit: impl Fn(&mut Arrival)) {
        let Some(&at) = self.places.get(ex.index()) else {
            return;
        };
        if let (Some(c), Some(h)) = (
            self.cold.get_mut(at as usize),
            self.hot.get_mut(at as usize),
        ) {
            let mut a = whole(h, c);
            edit(&mut a);
            *c = Cold::of(&a);
            *h = Hot::of(&a, h.from_span);
        }
    }

    /// The edge is gone (its index may be reused): it has no packed arrival any more.
    pub fn forget_edge(&mut self, ex: EdgeIndex) {
        if let Some(place) = self.places.get_mut(ex.index()) {
            *place = NOWHERE;
        }
    }

    /// Whether enough has changed since packing for laying the arrivals out again to pay:
    /// a change for every eighth arrival packed, or for every sixty-fourth once a long list
    /// (a hub's) is read from its list. Packing costs about as much as reading every
    /// arrival a few times, so this keeps it a small share of what the changes cost.
    pub fn worth_repacking(&self) -> bool {
        let share = if self.long_unpacked { 64 } else { 8 };
        self.changes >= 16 && self.changes * share >= self.cold.len()
    }

    /// Whether every packed arrival's hot part gives its dependent's span as it is now,
    /// and the place of every packed node's arrivals is known by edge.
    pub fn consistent(&self) -> bool {
        self.hot.len() == self.cold.len()
            && self.spans.iter().all(|&span| {
                if !span.is_packed() {
                    return true;
                }
                let At::Packed(hot, cold) = self.list(span) else {
                    return false;
                };
                hot.iter().all(|h| h.from_span == self.span(h.from))
                    && cold.iter().all(|c| {
                        self.places.get(c.edge.index()).is_some_and(|&at| {
                            self.cold.get(at as usize).map(|q| q.edge) == Some(c.edge)
                        })
                    })
            })
    }
}

/// A node's arrivals, wherever they are kept: packed, in two parts (with where each
/// dependent's own arrivals lie), or in the node's own list.
#[derive(Debug, Clone, Copy)]
pub(super) enum At<'g> {
    Packed(&'g [Hot], &'g [Cold]),
    Live(&'g [Arrival]),
}

impl<'g> At<'g> {
    pub fn len(self) -> usize {
        match self {
            At::Packed(hot, _) => hot.len(),
            At::Live(list) => list.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The arrival at `i`, whole.
    pub fn get(self, i: usize) -> Option<Arrival> {
        match self {
            At::Packed(hot, cold) => Some(whole(hot.get(i)?, cold.get(i)?)),
            At::Live(list) => list.get(i).copied(),
        }
    }

    /// The dependent of the arrival at `i` (which must be one).
    fn dependent(self, i: usize) -> NodeIndex {
        match self {
            At::Packed(hot, _) => hot[i].from,
            At::Live(list) => list[i].from,
        }
    }

    /// Appends the arrivals' two parts to `hot` and `cold`, the hot parts' spans still
    /// to be set: packed ones are copied as they are, which is most of a repacking.
    fn append_to(self, hot: &mut Vec<Hot>, cold: &mut Vec<Cold>) {
        match self {
            At::Packed(h, c) => {
                hot.extend_from_slice(h);
                cold.extend_from_slice(c);
            }
            At::Live(list) => {
                for a in list {
                    hot.push(Hot::of(a, Span::UNPACKED));
                    cold.push(Cold::of(a));
                }
            }
        }
    }

    /// The arrivals whole, in their order.
    pub fn iter(self) -> impl DoubleEndedIterator<Item = Arrival> + ExactSizeIterator + 'g {
        (0..self.len()).map(move |i| self.get(i).unwrap_or_else(Arrival::empty))
    }
}
