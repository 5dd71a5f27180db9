//! The graph's unit tests. Long because they share one set of fixtures and each checks a
//! change against a graph rebuilt from scratch (`snapshot().indexes_agree`); they move
//! with the graph's split into a core and its performance layer (issue 23).

use super::*;
use crate::domain::{ConsumerKind, ConsumerName, Contacts, Environment};
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn consumer(name: &str, team: &str) -> Consumer {
    Consumer {
        name: ConsumerName::parse(name).unwrap(),
        kind: ConsumerKind::Service,
        owner_team: TeamName::parse(team).unwrap(),
        environment: Environment::parse("production").unwrap(),
        contacts: Contacts::default(),
        webhook_url: None,
        discovered: false,
    }
}

struct Fixture {
    g: InventoryGraph,
    next_edge: EdgeId,
}

impl Fixture {
    fn new() -> Self {
        let mut g = InventoryGraph::new();
        for (id, name) in [(1, "base"), (2, "ft"), (3, "adapter")] {
            g.upsert_model(ModelInfo {
                id: ModelId(id),
                name: ModelName::parse(name).unwrap(),
                owner_team: TeamName::parse("ml").unwrap(),
            });
        }
        // base 1.0.0 (10), 1.1.0 (11), 2.0.0 (12); ft 1.0.0 (20); adapter 1.0.0 (30)
        for (id, model, v) in [
            (10, 1, "1.0.0"),
            (11, 1, "1.1.0"),
            (12, 1, "2.0.0"),
            (20, 2, "1.0.0"),
            (30, 3, "1.0.0"),
        ] {
            let name = g.model(ModelId(model)).unwrap().name.clone();
            g.upsert_version(VersionInfo {
                id: VersionId(id),
                model: ModelId(model),
                model_name: name,
                version: Version::parse(v).unwrap(),
            })
            .unwrap();
        }
        for (id, name) in [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")] {
            g.upsert_consumer(
                ConsumerId(id),
                consumer(name, if id % 2 == 0 { "even" } else { "odd" }),
            );
        }
        Self {
            g,
            next_edge: EdgeId(1),
        }
    }

    fn edge(&mut self, link: Link, origin: EdgeOrigin, last_seen: DateTime<Utc>) -> EdgeId {
        let id = self.next_edge;
        self.next_edge = EdgeId(id.0 + 1);
        self.g
            .upsert_edge(EdgeRecord {
                id,
                link,
                origin,
                origin_name: Arc::from("test"),
                first_seen: t0(),
                last_seen,
                observations: 1,
            })
            .unwrap();
        id
    }

    fn uses(&mut self, consumer: i64, model: i64, range: &str) -> EdgeId {
        let (consumer, model) = (ConsumerId(consumer), ModelId(model));
        let range = Arc::new(VersionRange::parse(range).unwrap());
        self.edge(
            Link::Uses {
                consumer,
                model,
                range,
            },
            EdgeOrigin::Api,
            t0(),
        )
    }

    fn depends(&mut self, consumer: i64, target: i64) -> EdgeId {
        let (consumer, target) = (ConsumerId(consumer), ConsumerId(target));
        self.edge(Link::DependsOn { consumer, target }, EdgeOrigin::Api, t0())
    }

    fn derived(&mut self, version: i64, parent: i64) -> EdgeId {
        let (version, parent) = (VersionId(version), VersionId(parent));
        self.edge(
            Link::DerivedFrom {
                version,
                parent,
                derivation: Derivation::FineTune,
            },
            EdgeOrigin::Webhook,
            t0(),
        )
    }

    /// base@1.0.0 ← ft@1.0.0 ← adapter@1.0.0; a uses base ^1; b uses ft 1.0.0;
    /// c → b; d ⇄ c; e uses adapter.
    fn standard() -> Self {
        let mut f = Self::new();
        f.uses(1, 1, "^1");
        f.derived(20, 10);
        f.derived(30, 20);
        f.uses(2, 2, "1.0.0");
        f.depends(3, 2);
        f.depends(4, 3);
        f.depends(3, 4);
        f.uses(5, 3, "*");
        f
    }
}

fn query() -> Query {
    Query {
        transitive: true,
        max_depth: 10,
        include_stale: true,
        limit: 1000,
        now: t0(),
        stale_after: chrono::Duration::days(30),
    }
}

fn labels(a: &Answer) -> Vec<(String, u32)> {
    a.reached
        .iter()
        .map(|r| (r.target.label(), r.depth))
        .collect()
}

#[test]
fn dependents_reach_through_derived_models_and_consumer_links() {
    let f = Fixture::standard();
    let a = f.g.dependents(VersionId(10), &query()).unwrap();
    assert_eq!(
        labels(&a),
        vec![
            ("a".into(), 1),
            ("ft@1.0.0".into(), 1),
            ("b".into(), 2),
            ("adapter@1.0.0".into(), 2),
            ("c".into(), 3),
            ("e".into(), 3),
            ("d".into(), 4),
        ]
    );
    assert!(a.complete());
    // d is explained from itself down to the version asked about.
    let d = &a.reached[6];
    let path: Vec<(EdgeKind, &str, &str)> =
        d.path.iter().map(|s| (s.kind, &*s.from, &*s.to)).collect();
    assert_eq!(
        path,
        vec![
            (EdgeKind::DependsOn, "d", "c"),
            (EdgeKind::DependsOn, "c", "b"),
            (EdgeKind::Uses, "b", "ft@1.0.0"),
            (EdgeKind::DerivedFrom, "ft@1.0.0", "base@1.0.0"),
        ]
    );
    assert_eq!(d.path[2].range.as_ref().map(|r| r.as_str()), Some("1.0.0"));
    assert_eq!(
        a.cycles,
        vec![Cycle {
            consumers: vec![
                ConsumerName::parse("c").unwrap(),
                ConsumerName::parse("d").unwrap()
            ]
        }]
    );
}

#[test]
fn ranges_decide_which_versions_a_consumer_reaches() {
    let f = Fixture::standard();
    // a uses base ^1: 1.1.0 yes, 2.0.0 no; and nobody derived from either.
    assert_eq!(
        labels(&f.g.dependents(VersionId(11), &query()).unwrap()),
        vec![("a".into(), 1)]
    );
    assert!(
        f.g.dependents(VersionId(12), &query())
            .unwrap()
            .reached
            .is_empty()
    );
}

#[test]
fn depth_and_size_limits_are_counted_not_hidden() {
    let f = Fixture::standard();
    let shallow =
        f.g.dependents(
            VersionId(10),
            &Query {
                max_depth: 2,
                ..query()
            },
        )
        .unwrap();
    assert_eq!(shallow.total, 4);
    assert_eq!(shallow.omitted_by_depth, 3);
    assert!(!shallow.complete());

    let small =
        f.g.dependents(
            VersionId(10),
            &Query {
                limit: 3,
                ..query()
            },
        )
        .unwrap();
    assert_eq!(small.reached.len(), 3);
    assert_eq!(small.total, 7);
    assert_eq!(small.omitted_by_limit, 4);
    assert!(!small.complete());

    let direct =
        f.g.dependents(
            VersionId(10),
            &Query {
                transitive: false,
                ..query()
            },
        )
        .unwrap();
    assert_eq!(
        labels(&direct),
        vec![("a".into(), 1), ("ft@1.0.0".into(), 1)]
    );
    assert!(direct.complete());
}

#[test]
fn stale_edges_are_shown_as_stale_or_skipped_and_counted() {
    let mut f = Fixture::new();
    let old = t0() - chrono::Duration::days(60);
    let range = Arc::new(VersionRange::parse("^1").unwrap());
    f.edge(
        Link::Uses {
            consumer: ConsumerId(1),
            model: ModelId(1),
            range,
        },
        EdgeOrigin::Scan,
        old,
    );
    let with = f.g.dependents(VersionId(10), &query()).unwrap();
    assert_eq!(labels(&with), vec![("a".into(), 1)]);
    assert!(with.reached[0].path[0].evidence[0].stale);

    let without =
        f.g.dependents(
            VersionId(10),
            &Query {
                include_stale: false,
                ..query()
            },
        )
        .unwrap();
    assert!(without.reached.is_empty());
    assert_eq!(without.stale_edges_skipped, 1);
}

#[test]
fn one_link_from_two_origins_is_one_step_with_two_pieces_of_evidence() {
    let mut f = Fixture::new();
    let range = Arc::new(VersionRange::parse("1.0.0").unwrap());
    let link = Link::Uses {
        consumer: ConsumerId(1),
        model: ModelId(1),
        range,
    };
    f.edge(link.clone(), EdgeOrigin::Api, t0());
    f.edge(link, EdgeOrigin::Download, t0());
    let a = f.g.dependents(VersionId(10), &query()).unwrap();
    assert_eq!(a.reached.len(), 1);
    let origins: Vec<EdgeOrigin> = a.reached[0].path[0]
        .evidence
        .iter()
        .map(|e| e.origin)
        .collect();
    assert_eq!(origins, vec![EdgeOrigin::Api, EdgeOrigin::Download]);
}

#[test]
fn dependencies_walk_the_other_way_down_to_base_models() {
    let f = Fixture::standard();
    let a = f.g.dependencies(ConsumerId(4), &query()).unwrap();
    assert_eq!(
        labels(&a),
        vec![
            ("c".into(), 1),
            ("b".into(), 2),
            ("ft@1.0.0".into(), 3),
            ("base@1.0.0".into(), 4),
        ]
    );
    let base = &a.reached[3];
    assert_eq!(base.path.first().unwrap().from.as_ref(), "d");
    assert_eq!(base.path.last().unwrap().to.as_ref(), "base@1.0.0");
}

#[test]
fn impact_counts_by_team_and_direct_and_active() {
    let mut f = Fixture::standard();
    let range = Arc::new(VersionRange::parse("1.0.0").unwrap());
    f.edge(
        Link::Uses {
            consumer: ConsumerId(2),
            model: ModelId(2),
            range,
        },
        EdgeOrigin::Scan,
        t0() - chrono::Duration::days(2),
    );
    let i =
        f.g.impact(VersionId(10), t0(), chrono::Duration::days(30), 7)
            .unwrap();
    assert_eq!(i.direct, 1);
    assert_eq!(i.total, 5);
    assert_eq!(i.derived_versions, 2);
    assert_eq!(i.by_team.get("odd"), Some(&3));
    assert_eq!(i.by_team.get("even"), Some(&2));
    assert_eq!(i.active, 1);
}

#[test]
fn removing_a_consumer_removes_its_edges() {
    let mut f = Fixture::standard();
    f.g.remove_consumer(ConsumerId(2));
    assert!(f.g.consumer(ConsumerId(2)).is_none());
    assert_eq!(f.g.consumer_id("b"), None);
    let a = f.g.dependents(VersionId(10), &query()).unwrap();
    assert_eq!(
        labels(&a),
        vec![
            ("a".into(), 1),
            ("ft@1.0.0".into(), 1),
            ("adapter@1.0.0".into(), 2),
            ("e".into(), 3)
        ]
    );
    assert_eq!(f.g.edge_count(), 6);
}

#[test]
fn an_edge_to_a_node_the_graph_lacks_asks_for_a_reload() {
    let mut f = Fixture::new();
    let err =
        f.g.upsert_edge(EdgeRecord {
            id: EdgeId(99),
            link: Link::DependsOn {
                consumer: ConsumerId(1),
                target: ConsumerId(77),
            },
            origin: EdgeOrigin::Api,
            origin_name: Arc::from("x"),
            first_seen: t0(),
            last_seen: t0(),
            observations: 1,
        })
        .unwrap_err();
    assert_eq!(err, GraphError::Missing("consumer", 77));
}

#[test]
fn cycles_among_many_links_are_the_strongly_connected_parts() {
    // 120 consumers that all use base 1.0.0, linked at random: every circle the answer
    // reports must be exactly a strongly connected part (of two or more) of those links.
    let mut f = Fixture::new();
    let mut links = Vec::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n) as i64
    };
    for id in 100..220 {
        f.g.upsert_consumer(ConsumerId(id), consumer(&format!("n{id}"), "odd"));
        f.uses(id, 1, "1.0.0");
    }
    for _ in 0..170 {
        let (a, b) = (100 + next(120), 100 + next(120));
        if a != b {
            f.depends(a, b);
            links.push((a, b));
        }
    }
    let mut expected_graph: petgraph::Graph<i64, ()> = petgraph::Graph::new();
    let nodes: HashMap<i64, petgraph::graph::NodeIndex> = (100..220)
        .map(|id| (id, expected_graph.add_node(id)))
        .collect();
    for &(a, b) in &links {
        expected_graph.add_edge(nodes[&a], nodes[&b], ());
    }
    let mut expected: Vec<Vec<String>> = petgraph::algo::tarjan_scc(&expected_graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let mut names: Vec<String> = scc
                .into_iter()
                .map(|ix| format!("n{}", expected_graph[ix]))
                .collect();
            names.sort();
            names
        })
        .collect();
    expected.sort();
    assert!(!expected.is_empty(), "the links should make some circles");
    let got = |g: &InventoryGraph| -> Vec<Vec<String>> {
        g.dependents(VersionId(10), &query())
            .unwrap()
            .cycles
            .into_iter()
            .map(|c| c.consumers.iter().map(|n| n.to_string()).collect())
            .collect()
    };
    // Right after the changes the graph treats every link as one that may loop; once
    // their revision is in, only the links it found on circles; the answer is the same.
    assert_eq!(got(&f.g), expected);
    f.g.set_revision(1);
    assert!(f.g.snapshot().indexes_agree);
    assert_eq!(got(&f.g), expected);
    // Asked only one step deep, the circles among the direct users are the same.
    let direct = Query {
        transitive: false,
        ..query()
    };
    assert_eq!(
        f.g.dependents(VersionId(10), &direct).unwrap().cycles.len(),
        expected.len()
    );
}

#[test]
fn arrivals_follow_removals_reused_indexes_and_new_evidence() {
    // The dependents walk reads each node's arrivals, not petgraph's edges: they must
    // stay the same edges through every kind of change, including a removed consumer's
    // index taken by the next node added.
    let mut f = Fixture::standard();
    assert!(f.g.snapshot().indexes_agree);
    f.g.remove_consumer(ConsumerId(3));
    assert!(f.g.snapshot().indexes_agree);
    f.g.upsert_consumer(ConsumerId(6), consumer("f", "odd"));
    f.depends(6, 2);
    f.depends(4, 6);
    assert!(f.g.snapshot().indexes_agree);
    let a = f.g.dependents(VersionId(20), &query()).unwrap();
    assert_eq!(
        labels(&a),
        vec![
            ("b".into(), 1),
            ("adapter@1.0.0".into(), 1),
            ("e".into(), 2),
            ("f".into(), 2),
            ("d".into(), 3)
        ]
    );

    // b's use of ft, seen again long ago: the walk now finds it stale from its arrival.
    let old = t0() - chrono::Duration::days(90);
    let renewed = EdgeRecord {
        id: EdgeId(4),
        link: Link::Uses {
            consumer: ConsumerId(2),
            model: ModelId(2),
            range: Arc::new(VersionRange::parse("1.0.0").unwrap()),
        },
        origin: EdgeOrigin::Api,
        origin_name: Arc::from("test"),
        first_seen: old,
        last_seen: old,
        observations: 2,
    };
    f.g.upsert_edge(renewed).unwrap();
    assert!(f.g.snapshot().indexes_agree);
    let fresh_only = Query {
        include_stale: false,
        ..query()
    };
    let a = f.g.dependents(VersionId(20), &fresh_only).unwrap();
    assert_eq!(
        labels(&a),
        vec![("adapter@1.0.0".into(), 1), ("e".into(), 2)]
    );
    assert_eq!(a.stale_edges_skipped, 1);

    f.g.remove_edge(EdgeId(4));
    assert!(f.g.snapshot().indexes_agree);
    assert_eq!(
        labels(&f.g.dependents(VersionId(20), &query()).unwrap()).len(),
        2
    );

    // f → b seen by a scan too: the step that explains f shows both origins, and one
    // again once the scan's edge is gone.
    let b = f.uses(2, 2, "1.0.0");
    let scanned = f.edge(
        Link::DependsOn {
            consumer: ConsumerId(6),
            target: ConsumerId(2),
        },
        EdgeOrigin::Scan,
        t0(),
    );
    assert!(f.g.snapshot().indexes_agree);
    let origins = |g: &InventoryGraph| {
        let a = g.dependents(VersionId(20), &query()).unwrap();
        let reached = a.reached.iter().find(|r| r.target.label() == "f").unwrap();
        reached.path[0]
            .evidence
            .iter()
            .map(|e| e.origin)
            .collect::<Vec<_>>()
    };
    assert_eq!(origins(&f.g), vec![EdgeOrigin::Api, EdgeOrigin::Scan]);
    f.g.remove_edge(scanned);
    assert!(f.g.snapshot().indexes_agree);
    assert_eq!(origins(&f.g), vec![EdgeOrigin::Api]);
    f.g.remove_edge(b);
    assert!(f.g.snapshot().indexes_agree);
}

/// Loads every edge of `source` into `into` (which holds its nodes) as a bulk load does,
/// in the order of their ids.
fn bulk_load_edges_of(source: &InventoryGraph, into: &mut InventoryGraph) {
    let mut edges: Vec<EdgeRecord> = source
        .snapshot()
        .edges
        .into_values()
        .map(|(_, _, e)| e)
        .collect();
    edges.sort_by_key(|e| e.id);
    for e in edges {
        into.load_edge(e).unwrap();
    }
    into.finish_load();
}

#[test]
fn a_bulk_load_lays_out_the_arrivals_single_upserts_would() {
    let upserted = Fixture::standard();
    let mut loaded = Fixture::new();
    bulk_load_edges_of(&upserted.g, &mut loaded.g);
    let snapshot = loaded.g.snapshot();
    assert!(snapshot.indexes_agree);
    assert_eq!(snapshot, upserted.g.snapshot());
    assert_eq!(
        loaded.g.dependents(VersionId(10), &query()),
        upserted.g.dependents(VersionId(10), &query())
    );
}

#[test]
fn a_size_limit_keeps_the_first_by_name_even_among_names_sharing_eight_bytes() {
    // Seventy direct users of base 1.0.0 and a derived version, named so that many
    // share their first eight bytes: the answer must list exactly the first by depth,
    // consumers before versions, then whole name, however the cut falls.
    let mut f = Fixture::new();
    f.derived(20, 10);
    let mut names = Vec::new();
    for i in 0..70_i64 {
        let name = match i % 3 {
            0 => format!("payments-api-{:02}", 69 - i),
            1 => format!("paymentz-{i}"),
            _ => format!("ab{i}"),
        };
        f.g.upsert_consumer(ConsumerId(100 + i), consumer(&name, "odd"));
        f.uses(100 + i, 1, "1.0.0");
        names.push(name);
    }
    names.sort();
    let mut expected: Vec<(String, u32)> = names.iter().map(|n| (n.clone(), 1)).collect();
    expected.push(("ft@1.0.0".into(), 1));
    for limit in [1, 5, 23, 24, 25, 47, 69, 70, 71, 200] {
        let a =
            f.g.dependents(VersionId(10), &Query { limit, ..query() })
                .unwrap();
        let want: Vec<_> = expected.iter().take(limit).cloned().collect();
        assert_eq!(labels(&a), want, "limit {limit}");
    }

    // A consumer renamed moves in the listing: its arrival's sort prefix follows.
    let mut renamed = consumer("aa-first-now", "odd");
    renamed.owner_team = TeamName::parse("even").unwrap();
    f.g.upsert_consumer(ConsumerId(100), renamed);
    assert!(f.g.snapshot().indexes_agree);
    let a =
        f.g.dependents(
            VersionId(10),
            &Query {
                limit: 1,
                ..query()
            },
        )
        .unwrap();
    assert_eq!(labels(&a), vec![("aa-first-now".into(), 1)]);
}

#[test]
fn every_size_limit_lists_a_prefix_of_the_whole_answer_and_counts_alike() {
    // Four depths of consumers fanning out below base 1.0.0, a derived version on the
    // way, and a circle at the bottom: whatever the limit, the walk keeps whole only
    // the visits it may list, and the counts, cycles and paths must not notice.
    let mut f = Fixture::standard();
    let mut next = 100;
    let mut layer = vec![1_i64];
    for _depth in 0..4 {
        let mut below = Vec::new();
        for &parent in &layer {
            for _ in 0..3 {
                f.g.upsert_consumer(ConsumerId(next), consumer(&format!("c{next}"), "fan"));
                f.depends(next, parent);
                below.push(next);
                next += 1;
            }
        }
        layer = below;
    }
    f.depends(layer[0], layer[1]);
    f.depends(layer[1], layer[0]);
    // Built by single upserts, the graph has no packed arrivals; packed, the walks read
    // those, and must give the very same answers.
    let unpacked = answers_at_every_limit(&f.g);
    assert!(
        !f.g.walk
            .packed
            .span(f.g.consumers[&ConsumerId(1)])
            .is_packed()
    );
    f.g.repack();
    assert!(
        f.g.walk
            .packed
            .span(f.g.consumers[&ConsumerId(1)])
            .is_packed()
    );
    assert!(f.g.snapshot().indexes_agree);
    assert_eq!(answers_at_every_limit(&f.g), unpacked);
    let deep = f.g.dependents(VersionId(10), &query()).unwrap();
    assert_eq!(deep.cycles.len(), 2, "c/d and the two at the bottom");
    assert!(deep.total > 120);
}

/// Every answer of [`every_size_limit_lists_a_prefix_of_the_whole_answer_and_counts_alike`],
/// checked against the whole one.
fn answers_at_every_limit(g: &InventoryGraph) -> Vec<Answer> {
    let f = Fixture {
        g: g.clone(),
        next_edge: EdgeId(0),
    };
    let mut answers = Vec::new();
    for max_depth in [1, 2, 3, 10] {
        let whole =
            f.g.dependents(
                VersionId(10),
                &Query {
                    max_depth,
                    ..query()
                },
            )
            .unwrap();
        assert!(whole.complete() || max_depth < 10, "max_depth {max_depth}");
        for limit in [0, 1, 2, 3, 4, 10, 40, 120, 200] {
            let a =
                f.g.dependents(
                    VersionId(10),
                    &Query {
                        limit,
                        max_depth,
                        ..query()
                    },
                )
                .unwrap();
            let at = format!("limit {limit}, max_depth {max_depth}");
            assert_eq!(a.total, whole.total, "{at}");
            assert_eq!(a.consumers_total, whole.consumers_total, "{at}");
            assert_eq!(a.omitted_by_depth, whole.omitted_by_depth, "{at}");
            assert_eq!(a.omitted_by_limit, whole.total - a.reached.len(), "{at}");
            assert_eq!(a.cycles, whole.cycles, "{at}");
            assert_eq!(a.reached[..], whole.reached[..a.reached.len()], "{at}");
            assert_eq!(a.reached.len(), limit.min(whole.total), "{at}");
            answers.push(a);
        }
    }
    answers
}

#[test]
fn packed_arrivals_answer_as_the_lists_do_through_every_change() {
    // A loaded graph walks its packed arrivals; each change unpacks what it touches and
    // a revision may lay them out again. After every change the answers must be those
    // of the same graph walked from its per-node lists alone (its packed copy dropped).
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut f = loaded_fan(&mut next);
    walks_agree(&f.g, "the load");
    assert!(f.g.walk.packed.span(f.g.models[&ModelId(1)]).is_packed());
    let mut revision = 1;
    for step in 0..300 {
        let what = random_change(&mut f, &mut next, step);
        walks_agree(&f.g, what);
        if step % 10 == 9 {
            revision += 1;
            f.g.set_revision(revision);
            walks_agree(&f.g, "a revision");
        }
    }
}

/// The standard fixture with 54 more consumers, each using a model or depending on an
/// earlier consumer at random, as a bulk load leaves it.
fn loaded_fan(next: &mut impl FnMut(u64) -> u64) -> Fixture {
    let mut f = Fixture::standard();
    for id in 6..60 {
        f.g.upsert_consumer(ConsumerId(id), consumer(&format!("n{id:02}"), "fan"));
    }
    for id in 6..60 {
        if next(3) == 0 {
            f.uses(
                id,
                1 + next(3) as i64,
                ["1.0.0", "^1", "*"][next(3) as usize],
            );
        } else {
            f.depends(id, 1 + next(id as u64 - 1) as i64);
        }
    }
    let mut loaded = Fixture::new();
    for id in 6..60 {
        loaded
            .g
            .upsert_consumer(ConsumerId(id), consumer(&format!("n{id:02}"), "fan"));
    }
    bulk_load_edges_of(&f.g, &mut loaded.g);
    loaded.next_edge = f.next_edge;
    loaded
}

/// The graph's indexes agree with petgraph, and its walks answer as the same graph
/// walked from its per-node lists alone.
fn walks_agree(g: &InventoryGraph, after: &str) {
    let questions = [
        Query {
            limit: 3,
            ..query()
        },
        Query {
            limit: 1000,
            max_depth: 3,
            ..query()
        },
        Query {
            limit: 2,
            include_stale: false,
            stale_after: chrono::Duration::days(1),
            ..query()
        },
    ];
    assert!(g.snapshot().indexes_agree, "after {after}");
    let mut lists_only = g.clone();
    lists_only.walk.unpack_all(g.g.node_bound());
    for version in [10, 11, 12, 20, 30] {
        for q in &questions {
            assert_eq!(
                g.dependents(VersionId(version), q),
                lists_only.dependents(VersionId(version), q),
                "version {version} after {after}"
            );
        }
    }
}

/// One change at random: a link added, removed or seen again, a consumer renamed or
/// removed; says which.
fn random_change(f: &mut Fixture, next: &mut impl FnMut(u64) -> u64, step: u32) -> &'static str {
    let consumers: Vec<ConsumerId> = f.g.consumers.keys().collect();
    let pick = |n: u64| consumers[n as usize % consumers.len()].0;
    match next(7) {
        0 | 1 => {
            let (a, b) = (pick(next(1000)), pick(next(1000)));
            f.depends(a, b);
            "a dependency"
        }
        2 => {
            let c = pick(next(1000));
            f.uses(c, 1 + next(3) as i64, "^1");
            "a use"
        }
        3 => {
            let ids: Vec<EdgeId> = f.g.edges.keys().collect();
            if let Some(&id) = ids.get(next(ids.len().max(1) as u64) as usize) {
                f.g.remove_edge(id);
            }
            "a removal"
        }
        4 => {
            let ids: Vec<EdgeId> = f.g.edges.keys().collect();
            if let Some(&id) = ids.get(next(ids.len().max(1) as u64) as usize) {
                let mut e = f.g.edge(id).unwrap().clone();
                e.last_seen = t0() - chrono::Duration::days(next(3) as i64);
                f.g.upsert_edge(e).unwrap();
            }
            "new evidence"
        }
        5 => {
            let id = pick(next(1000));
            f.g.upsert_consumer(ConsumerId(id), consumer(&format!("r{step:03}"), "fan"));
            "a rename"
        }
        _ => {
            if consumers.len() > 20 {
                f.g.remove_consumer(ConsumerId(pick(next(1000))));
            }
            "a consumer removed"
        }
    }
}

#[test]
fn walks_read_the_packed_arrivals_where_they_are_current() {
    // That the packed arrivals agree with petgraph is checked everywhere; this shows
    // they are what walks read. An empty list put beside a packed model's arrivals
    // behind the graph's back (which nothing but this test does) changes no answer, in
    // full or beyond a cut, until the node's span says it is unpacked and walks read
    // that list.
    let mut loaded = Fixture::new();
    bulk_load_edges_of(&Fixture::standard().g, &mut loaded.g);
    let g = &mut loaded.g;
    let counted = Query {
        limit: 0,
        ..query()
    };
    let (whole, cut) = (
        g.dependents(VersionId(10), &query()).unwrap(),
        g.dependents(VersionId(10), &counted).unwrap(),
    );
    let model = g.models[&ModelId(1)];
    assert!(g.walk.packed.span(model).is_packed());
    g.walk.lists.insert(model, arrivals::Arrivals::None);
    assert_eq!(g.dependents(VersionId(10), &query()).unwrap(), whole);
    assert_eq!(g.dependents(VersionId(10), &counted).unwrap(), cut);
    g.walk.packed.unpack(model, std::iter::empty());
    assert!(g.dependents(VersionId(10), &query()).unwrap().total < whole.total);
    assert!(g.dependents(VersionId(10), &counted).unwrap().total < cut.total);
}

#[test]
fn the_footprint_names_every_part_and_grows_with_the_edges() {
    let small = Fixture::standard();
    let mut big = Fixture::standard();
    for id in 100..1_100 {
        big.g
            .upsert_consumer(ConsumerId(id), consumer(&format!("fan-{id:04}"), "fan"));
        big.uses(id, 1, "^1");
    }
    let (s, b) = (small.g.footprint(), big.g.footprint());
    assert_eq!((s.edges, b.edges), (8, 1_008));
    assert_eq!(
        b.total(),
        b.parts.iter().map(|(_, bytes)| bytes).sum::<usize>()
    );
    for part in [
        "petgraph edges (records inline)",
        "arrivals changed since packing (lists)",
        "consumers' records (behind Arc)",
    ] {
        let of = |f: &super::Footprint| {
            f.parts
                .iter()
                .find(|(p, _)| *p == part)
                .map(|(_, b)| *b)
                .unwrap_or(0)
        };
        assert!(
            of(&b) > of(&s) + 1_000 * 16,
            "{part} grows with a thousand edges: {s}{b}"
        );
    }
    assert!(b.to_string().contains("bytes per edge"), "{b}");
}

#[test]
fn a_node_takes_32_bytes_and_a_version_shows_its_models_name_and_team() {
    assert_eq!(std::mem::size_of::<Option<Node>>(), 32);
    let mut g = InventoryGraph::new();
    g.upsert_model(ModelInfo {
        id: ModelId(1),
        name: ModelName::parse("fraud-scorer").unwrap(),
        owner_team: TeamName::parse("risk").unwrap(),
    });
    g.upsert_version(VersionInfo {
        id: VersionId(7),
        model: ModelId(1),
        model_name: ModelName::parse("fraud-scorer").unwrap(),
        version: Version::new(2, 1, 0),
    })
    .unwrap();
    let v = g.version(VersionId(7)).unwrap();
    assert_eq!(
        (v.model, v.model_name.as_str()),
        (ModelId(1), "fraud-scorer")
    );
    assert_eq!(g.model(ModelId(1)).unwrap().owner_team.as_str(), "risk");
    assert_eq!(g.model_id("fraud-scorer"), Some(ModelId(1)));
    // A team changed on the model is what it shows from then on.
    g.upsert_model(ModelInfo {
        id: ModelId(1),
        name: ModelName::parse("fraud-scorer").unwrap(),
        owner_team: TeamName::parse("fraud").unwrap(),
    });
    assert_eq!(g.model(ModelId(1)).unwrap().owner_team.as_str(), "fraud");
    assert!(g.snapshot().indexes_agree);
}
