//! Building a whole graph from rows as storage reads them (at start-up, and whenever an
//! instance finds it missed a change): models, then versions and consumers, then edges.
//! Storage only reads rows; what a row means to the graph is decided here.

use super::{ConsumerId, EdgeRecord, GraphError, InventoryGraph, ModelId, ModelInfo, VersionId};
use crate::domain::{Consumer, Version};

/// A graph being built. Rows that name a node the load did not see (committed after that
/// node's table was read) are skipped: they committed after the load's revision, so
/// following the change sequence brings them with what they name.
pub struct GraphBuilder {
    g: InventoryGraph,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self {
            g: InventoryGraph::new(),
        }
    }

    /// Room for this many of each, allocated once.
    pub fn reserve(&mut self, models: usize, versions: usize, consumers: usize, edges: usize) {
        self.g.reserve(models, versions, consumers, edges);
    }

    pub fn model(&mut self, m: ModelInfo) {
        self.g.upsert_model(m);
    }

    pub fn version(
        &mut self,
        id: VersionId,
        model: ModelId,
        version: Version,
    ) -> Result<(), GraphError> {
        // A version whose model the load did not see committed after it: skipped.
        match self.g.put_version(id, model, version) {
            Ok(()) | Err(GraphError::Missing(..)) => Ok(()),
        }
    }

    pub fn consumer(&mut self, id: ConsumerId, c: Consumer) {
        self.g.upsert_consumer(id, c);
    }

    /// Adds an edge, leaving its arrival to [`Self::finish`].
    pub fn edge(&mut self, e: EdgeRecord) {
        match self.g.load_edge(e) {
            Ok(()) | Err(GraphError::Missing(..)) => {}
        }
    }

    /// The graph as of `revision`, the database's head when the load began: a change
    /// that committed while the rows were read is applied again afterwards, which is
    /// harmless.
    pub fn finish(mut self, revision: i64) -> InventoryGraph {
        self.g.finish_load();
        self.g.set_revision(revision);
        self.g
    }
}
