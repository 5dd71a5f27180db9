//! Derived data (issue 6, step 2): dependents of kind `derived_store` (embedding and
//! RAG indexes, caches built from the model's outputs) hold copies of what the model
//! made, which erasing the model does not touch. Each must confirm its purge (an owner
//! of its team), or governance waives it by name with a justification. The execution
//! waits here until every one is settled; the certificate lists each.

use super::to_json;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::ConsumerId;
use crate::domain::DecommissionStep;
use crate::domain::Purge;
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::domain::{ConsumerName, RetirementState, Role, Text};
use crate::service::ServiceError;
use crate::service::retirements::{MAX_TEXT, require_governance};
use crate::store::inventory as inventory_repo;
use crate::store::kill_switch as steps;
use crate::store::purges as repo;

impl crate::service::Decommission<'_> {
    /// The derived stores among the retirement's dependents: `(consumer id, name, team)`.
    async fn derived_stores(
        &self,
        id: RetirementId,
    ) -> Result<Vec<(ConsumerId, ConsumerName, crate::domain::TeamName)>, ServiceError> {
        Ok(
            inventory_repo::derived_store_dependents(self.store().reader(), id)
                .await?
                .into_iter()
                .map(|(store, c)| (store, c.name, c.owner_team))
                .collect(),
        )
    }

    pub(super) async fn step_derived_data(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let stores = self.derived_stores(r.id).await?;
        let settled = repo::list(self.store().reader(), r.id).await?;
        let waiting: Vec<&str> = stores
            .iter()
            .filter(|(id, _, _)| !settled.iter().any(|p| p.consumer_id == *id))
            .map(|(_, name, _)| name.as_str())
            .collect();
        let now = self.now();
        if !waiting.is_empty() {
            let why = format!(
                "waiting for {} derived store(s) to confirm their purge (or for governance to waive them): {}",
                waiting.len(),
                waiting.join(", ")
            );
            steps::start_step(
                self.store().reader(),
                r.id,
                DecommissionStep::DerivedData,
                now,
                None,
            )
            .await?;
            steps::note_step_failure(
                self.store().reader(),
                r.id,
                DecommissionStep::DerivedData,
                now,
                &why,
            )
            .await?;
            return Ok(Some(why));
        }
        let outcome = if settled.is_empty() {
            "no derived stores depend on these versions".to_owned()
        } else {
            settled
                .iter()
                .map(|p| format!("{} {}", p.consumer, p.outcome))
                .collect::<Vec<_>>()
                .join(", ")
        };
        steps::finish_step(
            self.store().reader(),
            r.id,
            DecommissionStep::DerivedData,
            now,
            now,
            &outcome,
            Some(&to_json(&settled)),
        )
        .await?;
        Ok(None)
    }

    /// The purge confirmations and waivers recorded for retirement `id`.
    pub async fn purges(&self, id: RetirementId) -> Result<Vec<Purge>, ServiceError> {
        Ok(repo::list(self.store().reader(), id).await?)
    }

    /// The derived stores among retirement `id`'s dependents that have neither confirmed
    /// their purge nor been waived, by name: what its execution will wait for.
    pub async fn purges_awaited(&self, id: RetirementId) -> Result<Vec<String>, ServiceError> {
        let settled = repo::list(self.store().reader(), id).await?;
        Ok(self
            .derived_stores(id)
            .await?
            .into_iter()
            .filter(|(store, _, _)| !settled.iter().any(|p| p.consumer_id == *store))
            .map(|(_, name, _)| name.to_string())
            .collect())
    }

    /// A derived store's owner confirms it purged what it built from the retired
    /// versions; or governance waives a store with `justification`. Then the execution
    /// goes on if nothing else holds it.
    pub async fn settle_purge(
        &self,
        actor: &Actor,
        id: RetirementId,
        consumer: &str,
        waiver: Option<&str>,
    ) -> Result<Vec<Purge>, ServiceError> {
        let name = ConsumerName::parse(consumer)?;
        // A waiver is governance's, on the model (a grant may give it); a confirmation is
        // the store's owners', whose team is the consumer's.
        let acting = match waiver {
            Some(_) => self.acting_on_retirement(actor, id).await?,
            None => actor.clone(),
        };
        let actor = &acting;
        let note = match waiver {
            Some(j) => {
                require_governance(actor, "waive a derived store's purge")?;
                Some(Text::parse_required("justification", j, MAX_TEXT)?)
            }
            None => None,
        };
        let retirement = self.retirements().retirement(id).await?;
        // Settled ahead of the execution too: a store may purge (or governance waive it)
        // while the retirement is still pending.
        if !(retirement.state.is_pending() || retirement.state == RetirementState::Executing) {
            return Err(ServiceError::Conflict(format!(
                "retirement {id} is {}; purges are settled while it is pending or executing",
                retirement.state
            )));
        }
        let (consumer_id, _, team) = self
            .derived_stores(id)
            .await?
            .into_iter()
            .find(|(_, n, _)| *n == name)
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "{name} is not a derived store depending on retirement {id}"
                ))
            })?;
        if note.is_none() && actor.role != Role::Admin {
            super::super::registry::require_team_owner(actor, &team, &format!("consumer {name}"))?;
        }
        in_write_tx!(self, |tx| {
            let now = self.now();
            let purge = Purge {
                consumer_id,
                consumer: name.to_string(),
                outcome: if note.is_some() {
                    "waived"
                } else {
                    "confirmed"
                }
                .to_owned(),
                by: actor.name.clone(),
                at: now,
                note: note.as_ref().map(|n| n.as_str().to_owned()),
            };
            if repo::record(tx.conn(), id, &purge).await? {
                let entry = AuditEntry::new(
                    actor.audit_identity(),
                    Action::PurgeRecorded,
                    SubjectType::Retirement,
                    id.to_string(),
                )
                .after(&purge);
                self.append_audit(tx, now, entry).await?;
            }
            Ok(())
        })?;
        if retirement.state == RetirementState::Executing
            && let Err(e) = self.advance_decommission(id).await
        {
            tracing::error!(retirement = id.0, error = %e, "decommission stopped; it resumes on the next run");
        }
        Ok(repo::list(self.store().reader(), id).await?)
    }
}
