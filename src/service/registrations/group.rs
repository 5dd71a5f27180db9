//! Group commit of registration webhooks: each message is answered only after its
//! durable commit, and the messages waiting together commit in one transaction.
//!
//! Every registration is written this one way, set-wise, through [`GroupTx`]: on a SQLite
//! file the whole transaction runs in one hand-off to the store's writer thread
//! (`store::sqlite_writer`); elsewhere every lookup and every write covers the whole
//! group in one statement (per table, per chunk), so a group of 64 messages costs about a
//! dozen round trips instead of 64 × 15. Messages are still judged one by one, in arrival
//! order, against what the messages before them declared: an invalid message is answered
//! with its own error and leaves no trace, and the rest commit. A derivation's circle
//! check reads the graph (plus the group's own derivations, which the graph sees only
//! after the commit), which the writer thread must never wait on, so a group holding one
//! commits in a `WriteTx`. A group whose transaction fails is applied again message by
//! message, each as a group of one, so one message's failure is only its own.
//!
//! Why this file is long (about 900 lines): the group's queue, its worker (with its
//! respawn), the reading of what exists (`Seen`, `Known`) and the message-by-message
//! judgement of consumers and derivations (`GroupPlan`) share one batch type and its
//! failure handling. `GroupPlan` with `Known` and `Seen` is the part that could stand in
//! a `group/plan.rs` of its own; the tests are in `group/tests.rs`.

use super::{Received, Services, applied_entry, consumer_changed_entry};
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
use crate::store::webhook_sources::Source;
use futures_util::FutureExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Each message's answer, and the rows the group wrote (for the graph).
type Applied = (Vec<Result<Received, ServiceError>>, Written);

/// One received message waiting for its group's commit.
pub(crate) struct Job {
    message: Queued,
    reply: Reply,
}

/// A received message, as its group reads it.
#[derive(Clone)]
struct Queued {
    source: Source,
    message_id: String,
    batch: Arc<Vec<Registration>>,
}

/// The most messages committed together.
const GROUP_MAX: usize = 256;

type Reply = tokio::sync::oneshot::Sender<Result<Received, ServiceError>>;

/// What is left of a committed group: taking its rows into the graph, then answering.
struct Finish {
    written: Written,
    answers: Vec<(Reply, Result<Received, ServiceError>)>,
}

/// Takes whatever messages are waiting (at least one) and applies them as a group. Holds
/// the services only weakly, so it ends when they are dropped.
///
/// A committed group is finished (graph, answers) by a second task, in commit order,
/// while this one already commits the next: so the database never waits for the graph.
pub(super) async fn group_worker(
    inner: std::sync::Weak<crate::service::Inner>,
    mut rx: tokio::sync::mpsc::Receiver<Job>,
) {
    // One group may wait to be finished while the next commits; a third waits here.
    let (finished, mut to_finish) = tokio::sync::mpsc::channel::<Finish>(1);
    let finisher = inner.clone();
    tokio::spawn(async move {
        while let Some(finish) = to_finish.recv().await {
            let Some(inner) = finisher.upgrade() else {
                return;
            };
            Services { inner }.finish(finish).await;
        }
    });
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        for finish in (Services { inner }).apply_group(jobs).await {
            if finished.send(finish).await.is_err() {
                return;
            }
        }
    }
}

impl Services {
    /// Applies a group of messages set-wise in one transaction; if that transaction fails,
    /// each message alone the same way, so one message's failure is only its own. Returns
    /// what is left to do for each committed transaction ([`Services::finish`]), in
    /// commit order; a message whose own transaction failed is answered here.
    async fn apply_group(&self, jobs: Vec<Job>) -> Vec<Finish> {
        // Tests make the worker die here, as a bug in a group would.
        let _ = self.failpoints().hit("registration-group");
        let (jobs, replies): (Vec<Queued>, Vec<_>) =
            jobs.into_iter().map(|j| (j.message, j.reply)).unzip();
        let whole = Arc::new(jobs);
        let error = match self.commit_set_wise(&whole).await {
            Ok((outcomes, written)) => {
                let answers = replies.into_iter().zip(outcomes).collect();
                return vec![Finish { written, answers }];
            }
            Err(e) => e,
        };
        if whole.len() == 1 {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(error));
            }
            return Vec::new();
        }
        tracing::warn!(error = %error, messages = whole.len(), "a group of registrations failed; applying each on its own");
        let mut finished = Vec::new();
        for (job, reply) in whole.iter().cloned().zip(replies) {
            match self.commit_set_wise(&Arc::new(vec![job])).await {
                Ok((outcomes, written)) => finished.push(Finish {
                    written,
                    answers: vec![(reply, outcomes.into_iter().next().expect("one answer"))],
                }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        finished
    }

    /// Takes a committed group's rows into the graph, then answers its senders: so a
    /// sender that asks next finds what it registered.
    async fn finish(&self, finish: Finish) {
        self.inventory().after_own_commit(finish.written).await;
        self.inventory().prune_receipts().await;
        for (reply, outcome) in finish.answers {
            let _ = reply.send(outcome);
        }
    }

    /// Applies the group set-wise in one transaction: on a SQLite file, on the store's
    /// writer thread (one hand-off for the whole group); otherwise in a [`WriteTx`].
    async fn commit_set_wise(&self, jobs: &Arc<Vec<Queued>>) -> Result<Applied, ServiceError> {
        let mut attempt = 1;
        // A derivation's circle check reads the graph, which the writer thread must never
        // wait on: such a group commits in a `WriteTx` instead.
        let derives = jobs
            .iter()
            .flat_map(|j| j.batch.iter())
            .any(|r| matches!(r, Registration::Derivation { .. }));
        if !derives {
            loop {
                let (services, queued) = (Services::clone(self), jobs.clone());
                // Read here, so the writer thread never waits on the graph's lock.
                let seen = Seen::read(self, jobs);
                let outcome = self
                    .store()
                    .write_on_thread(move |tx| {
                        // Every await in there completes at once: the writer thread's
                        // transaction answers synchronously.
                        services
                            .apply_set_wise(tx, &queued, seen)
                            .now_or_never()
                            .unwrap_or_else(|| {
                                Err(ServiceError::internal(std::io::Error::other(
                                    "a group commit on the SQLite writer thread waited",
                                )))
                            })
                    })
                    .await;
                match outcome {
                    None => break,
                    Some(outcome) if super::super::again_after(&outcome, &mut attempt) => {}
                    Some(outcome) => return outcome,
                }
            }
        }
        if derives {
            // The graph takes a committed group in after the next one may have begun (its
            // finisher runs beside this worker): bring it up to every commit first, so the
            // circle check sees the derivations committed just before.
            self.inventory().refresh_inventory().await?;
        }
        in_write_tx!(self, |tx| {
            self.apply_set_wise(tx, jobs, Seen::read(self, jobs)).await
        })
    }

    /// The group-commit worker's queue, started on first use and started again when the
    /// worker has stopped (its receiver dropped by a panic). The one worker the
    /// supervisor does not own, on purpose: it must exist wherever a webhook is received
    /// (the server, and any process opening the service), lives exactly as long as the
    /// service feeding it (it holds it weakly), and is restarted by the very next message
    /// rather than after the supervisor's pause, so no sender waits on a dead queue.
    fn registration_queue(&self) -> tokio::sync::mpsc::Sender<Job> {
        let mut slot = self
            .inner
            .registrations
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = slot.as_ref().filter(|q| !q.is_closed()) {
            return queue.clone();
        }
        if slot.is_some() {
            tracing::error!("the registration group-commit worker stopped; starting it again");
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(4096);
        tokio::spawn(group_worker(Arc::downgrade(&self.inner), rx));
        *slot = Some(tx.clone());
        tx
    }

    /// Hands a message to the group-commit worker and waits for its outcome, which comes
    /// only after its transaction has committed. A message caught in a worker that died
    /// (queued behind the group that killed it) is handed once more to a new worker: its
    /// receipt makes a second application impossible.
    pub(super) async fn apply_queued(
        &self,
        source: Source,
        message_id: &str,
        batch: Vec<Registration>,
    ) -> Result<Received, ServiceError> {
        let stopped =
            || ServiceError::internal(std::io::Error::other("the registration worker stopped"));
        let batch = Arc::new(batch);
        for _ in 0..2 {
            let (reply, outcome) = tokio::sync::oneshot::channel();
            let job = Job {
                message: Queued {
                    source: source.clone(),
                    message_id: message_id.to_owned(),
                    batch: batch.clone(),
                },
                reply,
            };
            if self.registration_queue().send(job).await.is_err() {
                continue;
            }
            if let Ok(outcome) = outcome.await {
                return outcome;
            }
        }
        Err(stopped())
    }

    /// Applies consumer registrations of many messages inside `tx`. The outer error
    /// aborts the transaction; an inner one is one message's refusal, which wrote nothing.
    async fn apply_set_wise(
        &self,
        tx: &mut impl GroupTx,
        jobs: &[Queued],
        seen: Seen,
    ) -> Result<Applied, ServiceError> {
        let now = self.now();
        let inventory = self.inventory();
        let cycles = |version, parent, also: &[(VersionId, VersionId)]| {
            inventory.refuse_derivation_cycle(version, parent, also)
        };
        let cycles: CycleCheck<'_> = &cycles;
        let pairs: Vec<(i64, &str)> = jobs
            .iter()
            .map(|j| (j.source.id, j.message_id.as_str()))
            .collect();
        let received = tx.received_among(&pairs).await?;
        let mut plan = GroupPlan::new(Known::read(seen, tx, jobs).await?);
        // Per message: its answer if it is not applied; `None` if it is admitted.
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut admitted: HashSet<(i64, &str)> = HashSet::new();
        for (job, &pair) in jobs.iter().zip(&pairs) {
            let outcome =
                if received.contains(&(pair.0, pair.1.to_owned())) || admitted.contains(&pair) {
                    Some(Ok(Received::Duplicate))
                } else {
                    plan.admit(job, cycles).err().map(Err)
                };
            if outcome.is_none() {
                admitted.insert(pair);
            }
            outcomes.push(outcome);
        }
        let (revisions, written) = plan.write(tx, now).await?;
        let fresh: Vec<(i64, &str)> = pairs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_none())
            .map(|(p, _)| *p)
            .collect();
        tx.record_receipts(&fresh, now).await?;
        let applied: Vec<(&Queued, &Admitted, i64)> = jobs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_none())
            .zip(plan.messages.iter().zip(revisions))
            .map(|((job, _), (message, revision))| (job, message, revision))
            .collect();
        let mut entries = Vec::with_capacity(applied.len());
        for &(job, message, _) in &applied {
            entries.push(applied_entry(
                &job.source.name,
                &job.message_id,
                &job.batch,
                message.links.len(),
            ));
            for (before, after) in &message.changed {
                entries.push(consumer_changed_entry(&job.source.name, before, after));
            }
        }
        tx.append_audits(now, entries, self.service_key().audit_mac_key())
            .await?;
        let mut applied = applied.into_iter();
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    let (job, message, revision) = applied
                        .next()
                        .expect("one applied entry per admitted message");
                    Ok(Received::Applied {
                        registrations: job.batch.len(),
                        edges: message.links.len(),
                        revision,
                        kept: message.kept.clone(),
                    })
                })
            })
            .collect();
        Ok((outcomes, written))
    }
}

/// What exists of what the group names: the consumers its links point at, its models and
/// its pinned versions.
struct Known {
    /// The consumers the group declares or links to that exist, with their creators.
    consumers: HashMap<ConsumerName, ExistingConsumer>,
    models: HashMap<ModelName, ModelId>,
    versions: HashMap<(ModelId, Version), VersionId>,
}

/// What the graph tells of a group's models and versions, read before its transaction so
/// that the writer never waits on the graph (which the previous group may be updating).
/// Models and versions are never deleted, so one the graph holds exists: only those it
/// lacks (created through another instance a moment ago) are looked up, in the
/// transaction.
struct Seen {
    models: HashMap<ModelName, ModelId>,
    versions: HashMap<(ModelId, Version), VersionId>,
    /// Models the graph lacks, with the versions the group pins or derives of each.
    missing: HashMap<ModelName, Vec<Version>>,
    /// Versions of known models the graph lacks.
    unseen: Vec<(ModelId, Version)>,
}

impl Seen {
    fn read(services: &Services, jobs: &[Queued]) -> Self {
        let mut seen = Self {
            models: HashMap::new(),
            versions: HashMap::new(),
            missing: HashMap::new(),
            unseen: Vec::new(),
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

    /// Notes what the graph holds of `model` and of its version `exact`, if one is named.
    fn take(
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
    async fn read(
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
        })
    }
}

fn dedup<T: Ord>(v: &mut Vec<&T>) {
    v.sort_unstable();
    v.dedup();
}

/// Inventory changes as recorded: what changed and its row id.
type Changes = Vec<(Entity, i64)>;

/// A consumer a message of the group declares, as the group leaves it, and who creates
/// it if it is new.
struct Declared {
    consumer: Consumer,
    created_by: String,
}

/// A link whose consumers may not have ids yet.
enum Planned {
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
type CycleCheck<'a> = &'a (
        dyn Fn(VersionId, VersionId, &[(VersionId, VersionId)]) -> Result<(), ServiceError> + Sync
    );

/// What one admitted message changes, in its order.
struct Admitted {
    origin: String,
    consumers: Vec<ConsumerName>,
    links: Vec<Planned>,
    /// Consumers it changed (it created them): before and after, for the audit trail.
    changed: Vec<(Consumer, Consumer)>,
    /// Consumers it declared otherwise but may not change, with why.
    kept: Vec<String>,
}

/// The messages admitted so far and the consumers as they leave them.
struct GroupPlan {
    known: Known,
    declared: HashMap<ConsumerName, Declared>,
    messages: Vec<Admitted>,
    /// The derivations admitted so far: the graph sees them only after the commit, yet
    /// a later one may close a circle with them.
    derived: Vec<(VersionId, VersionId)>,
}

impl GroupPlan {
    fn new(known: Known) -> Self {
        Self {
            known,
            declared: HashMap::new(),
            messages: Vec::new(),
            derived: Vec::new(),
        }
    }

    fn exists(&self, name: &ConsumerName) -> bool {
        self.declared.contains_key(name) || self.known.consumers.contains_key(name)
    }

    /// Judges one message against the database and the messages admitted before it,
    /// with the same rules and words as a message applied alone; admits it if it holds.
    fn admit(&mut self, job: &Queued, cycles: CycleCheck<'_>) -> Result<(), ServiceError> {
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
    fn plan_links(
        &self,
        reg: &Registration,
        here: &HashMap<ConsumerName, Consumer>,
        links: &mut Vec<Planned>,
    ) -> Result<(), ServiceError> {
        let Registration::Consumer {
            name,
            uses,
            depends_on,
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
    fn plan_derivation(
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
    fn version_of(&self, model: &ModelName, version: Version) -> Result<VersionId, ServiceError> {
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
    fn take_in(
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
    async fn write(
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
    fn links(
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
    fn changes(
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
fn as_written(
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

#[cfg(test)]
mod tests;
