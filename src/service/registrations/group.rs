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
//! This file holds the queue, its worker (with its respawn) and the transaction around a
//! group; what exists of what a group names and how each message is judged and written
//! is `group/plan.rs`; the tests are `group/tests.rs`.

use super::{Received, Services, applied_entry, consumer_changed_entry};
use crate::domain::VersionId;
use crate::ingest::registrations::Registration;
use crate::service::ServiceError;
use crate::service::inventory::Written;
use crate::store::inventory::group::GroupTx;
use crate::store::webhook_sources::Source;
use futures_util::FutureExt;
use std::collections::HashSet;
use std::sync::Arc;

use plan::{Admitted, CycleCheck, GroupPlan, Known, Seen};

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
    /// writer thread (one hand-off for the whole group); on PostgreSQL, on the
    /// group-commit thread (`store::pg_writer`); otherwise in a [`WriteTx`].
    async fn commit_set_wise(&self, jobs: &Arc<Vec<Queued>>) -> Result<Applied, ServiceError> {
        let mut attempt = 1;
        // A derivation's circle check reads the graph, which the writer thread must never
        // wait on: such a group commits in a `WriteTx` instead.
        let derives = jobs
            .iter()
            .flat_map(|j| j.batch.iter())
            .any(|r| matches!(r, Registration::Derivation { .. }));
        if !derives && self.store().writes_groups_on_thread() {
            loop {
                let (services, queued) = (Services::clone(self), jobs.clone());
                // Read here, so the writer thread never waits on the graph's lock.
                let seen = Seen::read(self, jobs)
                    .with_frozen(self, self.store().reader())
                    .await?;
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
        let seen = Seen::read(self, jobs);
        let (services, queued, read) = (Services::clone(self), jobs.clone(), seen.clone());
        let on_thread = self
            .store()
            .on_group_thread(async move { services.commit_on_group_thread(&queued, read).await })
            .await;
        if let Some(outcome) = on_thread {
            return outcome?;
        }
        let seen = seen.with_frozen(self, self.store().reader()).await?;
        in_write_tx!(self, |tx| {
            self.apply_set_wise(tx, jobs, seen.clone()).await
        })
    }

    /// On PostgreSQL's group-commit thread (`store::pg_writer`), applies the group in one
    /// transaction of that thread's connection.
    async fn commit_on_group_thread(
        &self,
        jobs: &[Queued],
        seen: Seen,
    ) -> Result<Applied, ServiceError> {
        // Read before the write lock is taken, so other replicas do not wait on it.
        let seen = seen
            .with_frozen(self, self.store().group_reader().await?)
            .await?;
        in_write_tx!(self, begin_group_write, |tx| {
            self.apply_set_wise(tx, jobs, seen.clone()).await
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

mod plan;
#[cfg(test)]
mod tests;
