//! A group's plan: what exists of what its messages name (`Seen` from the graph before
//! the transaction, `Known` completed from the database inside it), each message judged
//! in order against that and the messages admitted before it (`GroupPlan::admit`), and
//! the rows the admitted messages write (`GroupPlan::write`).
//!
//! Why this file is long: the three steps share `Seen`, `Known` and the planned links,
//! and every refusal a message can meet (missing model, frozen version, environment
//! rule, cycle) is judged here against the same state; split, each part would pass all
//! of it across.

use super::super::Services;
use super::Queued;
use crate::domain::{
    Consumer, ConsumerName, EdgeOrigin, ModelName, ParseError, SourceChange, Version,
};
use crate::domain::{EdgeId, VersionId};
use crate::graph::{ConsumerId, Link};
use crate::ingest::registrations::Registration;
use crate::service::ServiceError;
use crate::service::inventory::Written;
use crate::service::inventory::{no_consumer, no_model, no_pinned_version, self_dependency};
use crate::store::inventory::group::GroupTx;
use crate::store::inventory::{Entity, ExistingConsumer, NewConsumer, Sighting};
use crate::store::registry::ModelId;
use std::collections::HashMap;
use std::sync::Arc;

/// What exists of what the group names: the consumers its links point at, its models and
/// its pinned versions.
pub(super) struct Known {
    /// The consumers the group declares or links to that exist, with their creators.
    consumers: HashMap<ConsumerName, ExistingConsumer>,
    models: HashMap<ModelName, ModelId>,
    versions: HashMap<(ModelId, Version), VersionId>,
    frozen: crate::service::retirements::FrozenOut,
    /// The environments the models' policies let consumers declare use from, for
    /// those that restrict them.
    environments: HashMap<ModelId, Vec<crate::domain::Environment>>,
}

/// What the graph tells of a group's models and versions, read before its transaction so
/// that the writer never waits on the graph (which the previous group may be updating).
/// Models and versions are never deleted, so one the graph holds exists: only those it
/// lacks (created through another instance a moment ago) are looked up, in the
/// transaction.
#[derive(Clone)]
pub(super) struct Seen {
    models: HashMap<ModelName, ModelId>,
    versions: HashMap<(ModelId, Version), VersionId>,
    /// Models the graph lacks, with the versions the group pins or derives of each.
    missing: HashMap<ModelName, Vec<Version>>,
    /// Versions of known models the graph lacks.
    unseen: Vec<(ModelId, Version)>,
    /// Retirements freezing new consumers out of the group's models (read with
    /// [`Seen::with_frozen`]).
    frozen: crate::service::retirements::FrozenOut,
    /// The models' environment rules (read with [`Seen::with_frozen`]).
    environments: HashMap<ModelId, Vec<crate::domain::Environment>>,
}

impl Seen {
    pub(super) fn read(services: &Services, jobs: &[Queued]) -> Self {
        let mut seen = Self {
            models: HashMap::new(),
            versions: HashMap::new(),
            missing: HashMap::new(),
            unseen: Vec::new(),
            frozen: Default::default(),
            environments: HashMap::new(),
        };
        let graph = services.read_graph();
        for reg in jobs.iter().flat_map(|j| j.batch.iter()) {
            match reg {
                Registration::Consumer { uses, .. } => {
                    for (model, range) in uses {
                        seen.take(&graph, model, range.as_exact());
                    }
                }
                Registration::Derivation {
                    model,
                    version,
                    parent_model,
                    parent_version,
                    ..
                } => {
                    seen.take(&graph, model, Some(*version));
                    seen.take(&graph, parent_model, Some(*parent_version));
                }
            }
        }
        seen
    }

    /// Adds the retirements that freeze new consumers out of the group's models, and
    /// the environments their policies allow (a read each; a model the graph lacks is
    /// new: nothing retires it yet, and its policy is its tier's until governance sets
    /// one), through `db`.
    pub(super) async fn with_frozen(
        mut self,
        services: &Services,
        db: &impl sea_orm::ConnectionTrait,
    ) -> Result<Self, ServiceError> {
        let models: Vec<ModelId> = self.models.values().copied().collect();
        self.frozen = services.retirements().frozen_out(db, &models).await?;
        self.environments = services.registry().environment_rules(db, &models).await?;
        Ok(self)
    }

    /// Notes what the graph holds of `model` and of its version `exact`, if one is named.
    pub(super) fn take(
        &mut self,
        graph: &crate::graph::InventoryGraph,
        model: &ModelName,
        exact: Option<Version>,
    ) {
        let Some(id) = graph.model_id(model.as_str()) else {
            self.missing.entry(model.clone()).or_default().extend(exact);
            return;
        };
        self.models.insert(model.clone(), id);
        if let Some(exact) = exact {
            match graph.version_id(id, exact) {
                Some(vid) => {
                    self.versions.insert((id, exact), vid);
                }
                None => self.unseen.push((id, exact)),
            }
        }
    }
}

impl Known {
    /// Completes what the graph told (`seen`) from the database. Consumers can be
    /// removed, so they are always read from the database: those the group declares
    /// (whether a source may change one depends on who created it) and those it depends on.
    pub(super) async fn read(
        seen: Seen,
        tx: &mut impl GroupTx,
        jobs: &[Queued],
    ) -> Result<Self, ServiceError> {
        let mut targets = Vec::new();
        for reg in jobs.iter().flat_map(|j| j.batch.iter()) {
            if let Registration::Consumer {
                name, depends_on, ..
            } = reg
            {
                targets.push(name);
                targets.extend(depends_on);
            }
        }
        dedup(&mut targets);
        let consumers = if targets.is_empty() {
            HashMap::new()
        } else {
            tx.existing_consumers(&targets).await?
        };
        let Seen {
            mut models,
            mut versions,
            missing,
            mut unseen,
            frozen,
            environments,
        } = seen;
        if !missing.is_empty() {
            let names: Vec<&ModelName> = missing.keys().collect();
            let found = tx.model_ids(&names).await?;
            for (name, pinned) in &missing {
                if let Some(&id) = found.get(name) {
                    unseen.extend(pinned.iter().map(|&v| (id, v)));
                }
            }
            models.extend(found);
        }
        if !unseen.is_empty() {
            unseen.sort_by_key(|(m, v)| (m.0, *v));
            unseen.dedup();
            versions.extend(tx.version_ids(&unseen).await?);
        }
        Ok(Self {
            consumers,
            models,
            versions,
            frozen,
            environments,
        })
    }
}

pub(super) fn dedup<T: Ord>(v: &mut Vec<&T>) {
    v.sort_unstable();
    v.dedup();
}

/// Inventory changes as recorded: what changed and its row id.
pub(super) type Changes = Vec<(Entity, i64)>;

/// A consumer a message of the group declares, as the group leaves it, and who creates
/// it if it is new.
pub(super) struct Declared {
    consumer: Consumer,
    created_by: String,
}

/// A link whose consumers may not have ids yet.
pub(super) enum Planned {
    Uses {
        consumer: ConsumerName,
        model: ModelId,
        range: Arc<crate::domain::VersionRange>,
    },
    DependsOn {
        consumer: ConsumerName,
        target: ConsumerName,
    },
    DerivedFrom {
        version: VersionId,
        parent: VersionId,
        derivation: crate::domain::Derivation,
    },
}

/// Refuses a derivation that would close a circle: through the graph and the
/// derivations given (those admitted before, in this group).
pub(super) type CycleCheck<'a> = &'a (
        dyn Fn(VersionId, VersionId, &[(VersionId, VersionId)]) -> Result<(), ServiceError> + Sync
    );

/// What one admitted message changes, in its order.
pub(super) struct Admitted {
    pub(super) origin: String,
    pub(super) consumers: Vec<ConsumerName>,
    pub(super) links: Vec<Planned>,
    /// Consumers it changed (it created them): before and after, for the audit trail.
    pub(super) changed: Vec<(Consumer, Consumer)>,
    /// Consumers it declared otherwise but may not change, with why.
    pub(super) kept: Vec<String>,
}

/// The messages admitted so far and the consumers as they leave them.
pub(super) struct GroupPlan {
    known: Known,
    declared: HashMap<ConsumerName, Declared>,
    pub(super) messages: Vec<Admitted>,
    /// The derivations admitted so far: the graph sees them only after the commit, yet
    /// a later one may close a circle with them.
    derived: Vec<(VersionId, VersionId)>,
}

impl GroupPlan {
    pub(super) fn new(known: Known) -> Self {
        Self {
            known,
            declared: HashMap::new(),
            messages: Vec::new(),
            derived: Vec::new(),
        }
    }

    pub(super) fn exists(&self, name: &ConsumerName) -> bool {
        self.declared.contains_key(name) || self.known.consumers.contains_key(name)
    }

    /// Judges one message against the database and the messages admitted before it,
    /// with the same rules and words as a message applied alone; admits it if it holds.
    pub(super) fn admit(
        &mut self,
        job: &Queued,
        cycles: CycleCheck<'_>,
    ) -> Result<(), ServiceError> {
        let origin = &job.source.name;
        let mut here: HashMap<ConsumerName, Consumer> = HashMap::new();
        let mut order = Vec::new();
        // Consumers first, so that dependsOn may name one declared later in the message.
        for consumer in job.batch.iter().filter_map(Registration::consumer) {
            order.push(consumer.name.clone());
            here.insert(consumer.name.clone(), consumer);
        }
        let mut links = Vec::new();
        let mut derived = self.derived.clone();
        for (index, reg) in job.batch.iter().enumerate() {
            let planned = match reg {
                Registration::Consumer { .. } => self.plan_links(reg, &here, &mut links),
                Registration::Derivation { .. } => {
                    self.plan_derivation(reg, &mut derived, cycles, &mut links)
                }
            };
            planned.map_err(|e| {
                ServiceError::Invalid(ParseError::new(
                    "registration",
                    format!("registration {} ({}): {e}", index + 1, reg.label()),
                ))
            })?;
        }
        let (changed, kept) = self.take_in(here, &format!("webhook:{origin}"));
        self.derived = derived;
        self.messages.push(Admitted {
            origin: origin.clone(),
            consumers: order,
            links,
            changed,
            kept,
        });
        Ok(())
    }

    /// The links one registration declares, each checked: its model and pinned version
    /// exist, and so does the consumer it depends on (here, admitted or in the database).
    pub(super) fn plan_links(
        &self,
        reg: &Registration,
        here: &HashMap<ConsumerName, Consumer>,
        links: &mut Vec<Planned>,
    ) -> Result<(), ServiceError> {
        let Registration::Consumer {
            name,
            uses,
            depends_on,
            environment,
            ..
        } = reg
        else {
            return Ok(());
        };
        for (model, range) in uses {
            let &id = self
                .known
                .models
                .get(model)
                .ok_or_else(|| no_model(model))?;
            if let Some(exact) = range.as_exact()
                && !self.known.versions.contains_key(&(id, exact))
            {
                return Err(no_pinned_version(model, exact));
            }
            if let Some(refused) = self.known.frozen.refusal((id, model), range, name) {
                return Err(refused);
            }
            if let Some(why) = self
                .known
                .environments
                .get(&id)
                .and_then(|allowed| crate::domain::environment_refusal(allowed, environment))
            {
                return Err(ServiceError::Policy(format!(
                    "{name} may not use {model}@{range}: {why}"
                )));
            }
            links.push(Planned::Uses {
                consumer: name.clone(),
                model: id,
                range: Arc::new(range.clone()),
            });
        }
        for target in depends_on {
            if !here.contains_key(target) && !self.exists(target) {
                return Err(no_consumer(target));
            }
            if target == name {
                return Err(self_dependency(name.as_str()));
            }
            links.push(Planned::DependsOn {
                consumer: name.clone(),
                target: target.clone(),
            });
        }
        Ok(())
    }

    /// The link a derivation declares: both versions exist, and it closes no circle with
    /// the graph or the derivations before it (`derived`, to which it is added).
    pub(super) fn plan_derivation(
        &self,
        reg: &Registration,
        derived: &mut Vec<(VersionId, VersionId)>,
        cycles: CycleCheck<'_>,
        links: &mut Vec<Planned>,
    ) -> Result<(), ServiceError> {
        let Registration::Derivation {
            model,
            version,
            parent_model,
            parent_version,
            derivation,
        } = reg
        else {
            return Ok(());
        };
        let version = self.version_of(model, *version)?;
        let parent = self.version_of(parent_model, *parent_version)?;
        cycles(version, parent, derived)?;
        derived.push((version, parent));
        links.push(Planned::DerivedFrom {
            version,
            parent,
            derivation: *derivation,
        });
        Ok(())
    }

    /// The id of `model@version`, as the one-message path words its absence.
    pub(super) fn version_of(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<VersionId, ServiceError> {
        let &id = self
            .known
            .models
            .get(model)
            .ok_or_else(|| no_model(model))?;
        self.known
            .versions
            .get(&(id, version))
            .copied()
            .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))
    }

    /// Takes the message's consumers into the plan as `source` may change them: returns
    /// the consumers changed (before, after) and why other changes were kept back.
    pub(super) fn take_in(
        &mut self,
        here: HashMap<ConsumerName, Consumer>,
        source: &str,
    ) -> (Vec<(Consumer, Consumer)>, Vec<String>) {
        let (mut changed, mut kept) = (Vec::new(), Vec::new());
        for (name, consumer) in here {
            let before = self
                .declared
                .get(&name)
                .map(|d| (d.consumer.clone(), d.created_by.clone()))
                .or_else(|| {
                    self.known
                        .consumers
                        .get(&name)
                        .map(|e| (e.consumer.clone(), e.created_by.clone()))
                });
            let Some((before, created_by)) = before else {
                let created_by = source.to_owned();
                self.declared.insert(
                    name,
                    Declared {
                        consumer,
                        created_by,
                    },
                );
                continue;
            };
            let after = match before.judge_registration(&created_by, &consumer, source) {
                SourceChange::Unchanged => before.clone(),
                SourceChange::Changed => {
                    changed.push((before.clone(), consumer.clone()));
                    consumer
                }
                SourceChange::Kept(why) => {
                    kept.push(why);
                    before.clone()
                }
            };
            // Registrations never set the notice webhook: keep it.
            let consumer = Consumer {
                webhook_url: before.webhook_url.clone(),
                ..after
            };
            self.declared.insert(
                name,
                Declared {
                    consumer,
                    created_by,
                },
            );
        }
        (changed, kept)
    }

    /// Writes what the admitted messages change; returns each one's revision (that of
    /// its last change), and the rows written for the graph.
    pub(super) async fn write(
        &self,
        tx: &mut impl GroupTx,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<i64>, Written), ServiceError> {
        let declared: Vec<NewConsumer<'_>> = self
            .declared
            .values()
            .map(|d| NewConsumer {
                consumer: &d.consumer,
                sealed_secret: None,
                at: now,
                by: &d.created_by,
            })
            .collect();
        let written = tx.upsert_consumers(&declared).await?;
        let id_of = |name: &ConsumerName| -> Result<ConsumerId, ServiceError> {
            written
                .get(name)
                .map(|(id, _)| id)
                .or_else(|| self.known.consumers.get(name).map(|e| &e.id))
                .copied()
                .ok_or_else(|| no_consumer(name))
        };
        let links = self.links(&id_of)?;
        let sightings: Vec<Sighting<'_>> = links
            .iter()
            .map(|(link, origin)| Sighting {
                link,
                origin: EdgeOrigin::Webhook,
                origin_name: origin,
                at: now,
                since: None,
                count: 1,
            })
            .collect();
        let (edges, rows) = tx.record_edges(&sightings).await?;
        let (changes, ends) = self.changes(&id_of, &edges)?;
        let last = tx.record_changes(now, &changes).await?;
        let total = i64::try_from(changes.len()).unwrap_or(i64::MAX);
        let consumers: HashMap<ConsumerId, &Consumer> =
            written.values().map(|(id, c)| (*id, c)).collect();
        let graph = as_written(last - total + 1, &changes, &consumers, &rows)?;
        Ok((
            ends.into_iter()
                .map(|end| last - total + i64::try_from(end).unwrap_or(i64::MAX))
                .collect(),
            graph,
        ))
    }

    /// The planned links with their consumers' ids, each with the message's origin.
    pub(super) fn links(
        &self,
        id_of: &impl Fn(&ConsumerName) -> Result<ConsumerId, ServiceError>,
    ) -> Result<Vec<(Link, &str)>, ServiceError> {
        let mut links = Vec::new();
        for message in &self.messages {
            for planned in &message.links {
                let link = match planned {
                    Planned::Uses {
                        consumer,
                        model,
                        range,
                    } => Link::Uses {
                        consumer: id_of(consumer)?,
                        model: *model,
                        range: range.clone(),
                    },
                    Planned::DependsOn { consumer, target } => Link::DependsOn {
                        consumer: id_of(consumer)?,
                        target: id_of(target)?,
                    },
                    Planned::DerivedFrom {
                        version,
                        parent,
                        derivation,
                    } => Link::DerivedFrom {
                        version: *version,
                        parent: *parent,
                        derivation: *derivation,
                    },
                };
                links.push((link, message.origin.as_str()));
            }
        }
        Ok(links)
    }

    /// The inventory changes in message order (each message's consumers, then its
    /// edges), and where each message's changes end.
    pub(super) fn changes(
        &self,
        id_of: &impl Fn(&ConsumerName) -> Result<ConsumerId, ServiceError>,
        edges: &[EdgeId],
    ) -> Result<(Changes, Vec<usize>), ServiceError> {
        let mut changes = Vec::with_capacity(edges.len() * 2);
        let mut ends = Vec::with_capacity(self.messages.len());
        let mut edge = edges.iter();
        for message in &self.messages {
            for name in &message.consumers {
                changes.push((Entity::Consumer, id_of(name)?.0));
            }
            for _ in &message.links {
                changes.push((Entity::Edge, edge.next().expect("one edge per link").0));
            }
            ends.push(changes.len());
        }
        Ok((changes, ends))
    }
}

/// The rows as written, change by change from revision `first`, for the graph to take
/// in as they are.
pub(super) fn as_written(
    first: i64,
    changes: &[(Entity, i64)],
    consumers: &HashMap<ConsumerId, &Consumer>,
    rows: &HashMap<EdgeId, crate::graph::EdgeRecord>,
) -> Result<Written, ServiceError> {
    let mut graph = Written::starting_at(first);
    for &(entity, id) in changes {
        let missing = || {
            ServiceError::internal(std::io::Error::other(format!(
                "{} {id} was written but not returned",
                entity.as_str()
            )))
        };
        match entity {
            Entity::Consumer => {
                let id = ConsumerId(id);
                graph.consumer(id, (*consumers.get(&id).ok_or_else(missing)?).clone());
            }
            _ => graph.edge(rows.get(&EdgeId(id)).ok_or_else(missing)?.clone()),
        }
    }
    Ok(graph)
}
