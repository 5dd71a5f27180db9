//! Questions to the graph: dependents, dependencies, impact and their BOMs, bounded by
//! the settings and honest about what they could not see.

use crate::domain::{ConsumerName, ModelName, Version};
use crate::graph::{Answer, ConsumerId, Impact, Query, VersionId};
use crate::service::ServiceError;
use std::sync::atomic::Ordering;

use super::*;

impl crate::service::Inventory<'_> {
    fn bounded(&self, ask: Ask) -> Result<Query, ServiceError> {
        let s = self.inventory_settings();
        let max_depth = ask.max_depth.unwrap_or(s.max_depth.min(20));
        if max_depth == 0 || max_depth > s.max_depth {
            return Err(ServiceError::Invalid(crate::domain::ParseError::new(
                "maxDepth",
                format!("must be between 1 and {}, not {max_depth}", s.max_depth),
            )));
        }
        let limit = ask.limit.unwrap_or(s.max_results.min(1_000));
        if limit == 0 || limit > s.max_results {
            return Err(ServiceError::Invalid(crate::domain::ParseError::new(
                "limit",
                format!("must be between 1 and {}, not {limit}", s.max_results),
            )));
        }
        Ok(Query {
            transitive: ask.transitive,
            max_depth,
            include_stale: ask.include_stale,
            limit,
            now: self.now(),
            stale_after: s.stale_after(),
        })
    }

    /// Looks a version up in the graph, catching up once if it is not there yet (it may
    /// have been registered through another instance a moment ago).
    async fn graph_version(&self, model: &str, version: &str) -> Result<VersionId, ServiceError> {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let find = |s: &Self| {
            let g = s.read_graph();
            g.model_id(model.as_str())
                .and_then(|m| g.version_id(m, version))
        };
        if let Some(id) = find(self) {
            return Ok(id);
        }
        self.refresh_inventory().await?;
        find(self).ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))
    }

    pub(in crate::service) async fn graph_consumer(
        &self,
        name: &str,
    ) -> Result<ConsumerId, ServiceError> {
        let name = ConsumerName::parse(name)?;
        if let Some(id) = self.read_graph().consumer_id(name.as_str()) {
            return Ok(id);
        }
        self.refresh_inventory().await?;
        self.read_graph()
            .consumer_id(name.as_str())
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {name}")))
    }

    /// Who depends on `model@version`.
    pub async fn dependents(
        &self,
        model: &str,
        version: &str,
        ask: Ask,
    ) -> Result<Answer, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_version(model, version).await?;
        let answer = self.read_graph().dependents(id, &q);
        answer
            .map(|a| self.honest(a))
            .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))
    }

    /// What `consumer` depends on.
    pub async fn dependencies(&self, consumer: &str, ask: Ask) -> Result<Answer, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_consumer(consumer).await?;
        let answer = self.read_graph().dependencies(id, &q);
        answer
            .map(|a| self.honest(a))
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {consumer}")))
    }

    /// Marks an answer computed while the graph waits to be loaded again (see
    /// `Inventory::needs_reload`) as behind, and so not complete.
    fn honest(&self, mut answer: Answer) -> Answer {
        answer.behind = self.inner.inventory.needs_reload.load(Ordering::Acquire);
        answer
    }

    /// A CycloneDX 1.6 BOM of who depends on `model@version`.
    pub async fn dependents_bom(
        &self,
        model: &str,
        version: &str,
        ask: Ask,
    ) -> Result<serde_json::Value, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_version(model, version).await?;
        let g = self.read_graph();
        let (answer, links) = g
            .answer_with_links(crate::graph::Upstream::Version(id), true, &q)
            .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))?;
        let answer = self.honest(answer);
        let root = crate::graph::Target::Version {
            model: ModelName::parse(model)?,
            version: Version::parse(version)?,
        };
        Ok(crate::export::cyclonedx::bom(
            &root,
            &answer,
            &links,
            rand::random(),
            self.now(),
        ))
    }

    /// A CycloneDX 1.6 BOM of what `consumer` depends on.
    pub async fn dependencies_bom(
        &self,
        consumer: &str,
        ask: Ask,
    ) -> Result<serde_json::Value, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_consumer(consumer).await?;
        let g = self.read_graph();
        let root = g
            .consumer_target(id)
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {consumer}")))?;
        let (answer, links) = g
            .answer_with_links(crate::graph::Upstream::Consumer(id), false, &q)
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {consumer}")))?;
        let answer = self.honest(answer);
        Ok(crate::export::cyclonedx::bom(
            &root,
            &answer,
            &links,
            rand::random(),
            self.now(),
        ))
    }

    pub async fn impact(
        &self,
        model: &str,
        version: &str,
        active_days: u32,
    ) -> Result<Impact, ServiceError> {
        if !(1..=3650).contains(&active_days) {
            return Err(ServiceError::Invalid(crate::domain::ParseError::new(
                "activeDays",
                format!("must be between 1 and 3650, not {active_days}"),
            )));
        }
        let id = self.graph_version(model, version).await?;
        let stale_after = self.inventory_settings().stale_after();
        self.read_graph()
            .impact(id, self.now(), stale_after, active_days)
            .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))
    }
}
