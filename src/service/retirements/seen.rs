//! When a dependent was last seen: in use (scans and downloads, which decide whether it
//! has gone quiet), and depending at all (declarations too, which decide whether a
//! retirement that tells only the recently seen tells it).

use crate::domain::{ConsumerId, Version};
use chrono::{DateTime, Utc};

/// When `consumer` was last seen using any of `versions` of the model (a scan or a
/// download, not a declaration), over every `uses` edge it has to that model: the
/// explaining path holds only one of them.
pub(super) fn last_use(
    g: &crate::graph::InventoryGraph,
    consumer: ConsumerId,
    model: crate::graph::ModelId,
    versions: &[Version],
) -> Option<DateTime<Utc>> {
    g.edges_of_consumer(consumer)
        .into_iter()
        .filter(|e| !e.origin.is_declared())
        .filter(|e| match &e.link {
            crate::graph::Link::Uses {
                consumer: c,
                model: m,
                range,
            } => *c == consumer && *m == model && versions.iter().any(|&v| range.matches(v)),
            _ => false,
        })
        .map(|e| e.last_seen)
        .max()
}

/// When anything last showed `consumer` depends: its own edges to `versions` of the model
/// when it has any (declared, observed or downloading), else any edge of its own (it
/// depends through another consumer or a derived model).
pub(super) fn last_seen(
    g: &crate::graph::InventoryGraph,
    consumer: ConsumerId,
    model: crate::graph::ModelId,
    versions: &[Version],
) -> Option<DateTime<Utc>> {
    let edges = g.edges_of_consumer(consumer);
    let direct = |e: &&crate::graph::EdgeRecord| match &e.link {
        crate::graph::Link::Uses {
            model: m, range, ..
        } => *m == model && versions.iter().any(|&v| range.matches(v)),
        _ => false,
    };
    let own: Vec<_> = edges.iter().filter(direct).collect();
    if own.is_empty() {
        edges.iter().map(|e| e.last_seen).max()
    } else {
        own.iter().map(|e| e.last_seen).max()
    }
}
