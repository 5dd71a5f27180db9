//! The dependents graph as an SVG drawn on the server: the version asked about in the
//! middle, each depth on a ring around it. A picture holds a few dozen nodes legibly,
//! so past that the rings show groups (by kind, per depth) that link to the filtered
//! list instead; the list below the picture always holds every node the answer has.
//! Drawn here rather than by a script library: the page needs no script to show it,
//! every node is a link the keyboard reaches, and the cost is bounded by what is drawn.

use std::collections::BTreeMap;
use std::f64::consts::TAU;

/// Most nodes drawn one by one; past that, groups.
pub const MAX_DRAWN: usize = 40;
/// Rings drawn; deeper nodes join the outermost ring (and its groups' lists).
pub const RINGS: u32 = 3;
const RING_GAP: f64 = 120.0;
const LABEL_CHARS: usize = 22;

/// A node to draw: where, what it says, where it leads.
pub struct DrawnNode {
    pub x: String,
    pub y: String,
    pub label: String,
    /// The full name and what it is, for the tooltip and screen readers.
    pub title: String,
    pub href: String,
    /// `center`, `consumer`, `derived`, `group` or `selected`.
    pub class: &'static str,
}

pub struct DrawnEdge {
    pub x1: String,
    pub y1: String,
    pub x2: String,
    pub y2: String,
}

pub struct Drawing {
    pub view_box: String,
    pub nodes: Vec<DrawnNode>,
    pub edges: Vec<DrawnEdge>,
    /// True when the rings show groups rather than each node.
    pub grouped: bool,
}

/// One dependent as the drawing needs it.
pub struct Dot<'a> {
    pub label: &'a str,
    pub depth: u32,
    /// What the dependent depends on, one step towards the centre.
    pub parent: &'a str,
    /// `service`, `pipeline`, … or `derived model`.
    pub kind: &'a str,
    pub derived: bool,
    pub href: String,
    pub selected: bool,
}

fn at(ring: u32, i: usize, n: usize) -> (f64, f64) {
    if ring == 0 {
        return (0.0, 0.0);
    }
    // Rings start at different angles so their spokes do not line up.
    let angle = TAU * (i as f64 + 0.5 * f64::from(ring % 2)) / n.max(1) as f64 - TAU / 4.0;
    let r = RING_GAP * f64::from(ring);
    (r * angle.cos(), r * angle.sin())
}

fn short(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

fn coordinate(v: f64) -> String {
    format!("{v:.1}")
}

/// Draws `dots` around `center` (each one when few, else groups linking to `group_href`
/// with a kind and a depth filled in).
pub fn draw(center: &str, dots: &[Dot<'_>], group_href: impl Fn(&str, u32) -> String) -> Drawing {
    let mut nodes = vec![DrawnNode {
        x: coordinate(0.0),
        y: coordinate(0.0),
        label: short(center),
        title: format!("{center} (the version asked about)"),
        href: "#list".into(),
        class: "center",
    }];
    let mut positions: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    positions.insert(center, (0.0, 0.0));
    let mut edges = Vec::new();
    let grouped = dots.len() > MAX_DRAWN;
    let mut rings_used = 0;
    if grouped {
        // (ring, kind) → count, drawn as one node each.
        let mut groups: BTreeMap<(u32, &str), usize> = BTreeMap::new();
        for d in dots {
            *groups.entry((d.depth.min(RINGS), d.kind)).or_default() += 1;
        }
        let per_ring = |ring: u32| groups.keys().filter(|(r, _)| *r == ring).count();
        let mut index: BTreeMap<u32, usize> = BTreeMap::new();
        for (&(ring, kind), &count) in &groups {
            let i = index.entry(ring).or_default();
            let (x, y) = at(ring, *i, per_ring(ring));
            *i += 1;
            rings_used = rings_used.max(ring);
            let depth = if ring == RINGS {
                format!("depth {ring}+")
            } else {
                format!("depth {ring}")
            };
            nodes.push(DrawnNode {
                x: coordinate(x),
                y: coordinate(y),
                label: format!("{count} × {kind}"),
                title: format!("{count} {kind} dependents at {depth}: list them"),
                href: group_href(kind, ring),
                class: "group",
            });
            // A group stands for nodes of many parents: it is tied to the centre.
            edges.push(edge((x, y), (0.0, 0.0)));
        }
    } else {
        let per_ring = |ring: u32| dots.iter().filter(|d| d.depth.min(RINGS) == ring).count();
        let mut index: BTreeMap<u32, usize> = BTreeMap::new();
        for d in dots {
            let ring = d.depth.min(RINGS);
            let i = index.entry(ring).or_default();
            let (x, y) = at(ring, *i, per_ring(ring));
            *i += 1;
            rings_used = rings_used.max(ring);
            positions.insert(d.label, (x, y));
            nodes.push(DrawnNode {
                x: coordinate(x),
                y: coordinate(y),
                label: short(d.label),
                title: format!(
                    "{} ({}, depth {}): show its evidence",
                    d.label, d.kind, d.depth
                ),
                href: d.href.clone(),
                class: if d.selected {
                    "selected"
                } else if d.derived {
                    "derived"
                } else {
                    "consumer"
                },
            });
        }
        for d in dots {
            let from = positions[d.label];
            let to = positions.get(d.parent).copied().unwrap_or((0.0, 0.0));
            edges.push(edge(from, to));
        }
    }
    // Room around the outer ring for the circles and the labels under them.
    let half = RING_GAP * f64::from(rings_used.max(1)) + 90.0;
    Drawing {
        view_box: format!("{} {} {} {}", -half, -half, 2.0 * half, 2.0 * half),
        nodes,
        edges,
        grouped,
    }
}

fn edge(from: (f64, f64), to: (f64, f64)) -> DrawnEdge {
    DrawnEdge {
        x1: coordinate(from.0),
        y1: coordinate(from.1),
        x2: coordinate(to.0),
        y2: coordinate(to.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot<'a>(label: &'a str, depth: u32, parent: &'a str) -> Dot<'a> {
        Dot {
            label,
            depth,
            parent,
            kind: "service",
            derived: false,
            href: format!("?node={label}"),
            selected: false,
        }
    }

    #[test]
    fn few_dependents_are_drawn_each_linked_to_its_parent() {
        let dots = [dot("a", 1, "m@1.0.0"), dot("b", 2, "a")];
        let d = draw("m@1.0.0", &dots, |_, _| String::new());
        assert!(!d.grouped);
        assert_eq!(d.nodes.len(), 3);
        // b's edge ends where a is drawn.
        assert_eq!(
            (d.edges[1].x2.clone(), d.edges[1].y2.clone()),
            (d.nodes[1].x.clone(), d.nodes[1].y.clone())
        );
    }

    #[test]
    fn a_hub_is_drawn_as_groups_per_depth_and_kind() {
        let names: Vec<String> = (0..5_000).map(|i| format!("svc-{i}")).collect();
        let dots: Vec<Dot<'_>> = names
            .iter()
            .map(|n| Dot {
                label: n,
                depth: 1,
                parent: "hub@1.0.0",
                kind: "service",
                derived: false,
                href: String::new(),
                selected: false,
            })
            .collect();
        let d = draw("hub@1.0.0", &dots, |kind, depth| {
            format!("?kind={kind}&depth={depth}")
        });
        assert!(d.grouped);
        assert_eq!(d.nodes.len(), 2);
        assert_eq!(d.nodes[1].label, "5000 × service");
        assert_eq!(d.nodes[1].href, "?kind=service&depth=1");
    }
}
