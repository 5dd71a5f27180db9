//! Freezing new consumers out (a lever governance pulls when scheduling): from the
//! notice on, a consumer that was not a dependent when it went out is refused the
//! retiring versions, as a download (410 with a `Link` to the retirement) and as a new
//! use declared. Dependents keep their access until the effective date.

use crate::domain::{
    ConsumerId, ConsumerName, ModelId, ModelName, Retirement, Version, VersionRange,
};
use crate::service::ServiceError;
use crate::store::retirements as repo;

impl crate::service::Retirements<'_> {
    /// The pending retirement that freezes `consumer` out of any version of `model`
    /// that `covers` accepts, if one does.
    pub(crate) async fn freezing_out(
        &self,
        conn: &impl crate::store::Conn,
        model_id: ModelId,
        covers: impl Fn(Version) -> bool,
        consumer: ConsumerId,
    ) -> Result<Option<Retirement>, ServiceError> {
        for r in repo::pending_of_model(conn, model_id).await? {
            if !r.levers.freeze_new_consumers || !r.affected_versions.iter().any(|&v| covers(v)) {
                continue;
            }
            if repo::dependent(conn, r.id, consumer).await?.is_none() {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Refuses `consumer`'s download of `model@version` when a retirement froze it out.
    pub(crate) async fn refuse_if_frozen_out(
        &self,
        model: &ModelName,
        version: Version,
        consumer: &ConsumerName,
    ) -> Result<(), ServiceError> {
        let db = self.store().reader();
        let (Some((model_id, _)), Some((consumer_id, _))) = (
            crate::store::registry::find_model(db, model).await?,
            crate::store::inventory::find_consumer(db, consumer).await?,
        ) else {
            return Ok(());
        };
        match self
            .freezing_out(db, model_id, |v| v == version, consumer_id)
            .await?
        {
            Some(r) => Err(ServiceError::Gone(frozen_message(
                &r,
                consumer,
                &format!("{model}@{version}"),
            ))),
            None => Ok(()),
        }
    }

    /// Refuses a new use of `model@range` by `consumer` when a retirement froze it out.
    pub(crate) async fn refuse_new_use_if_frozen(
        &self,
        conn: &impl crate::store::Conn,
        (model_id, model): (ModelId, &ModelName),
        range: &VersionRange,
        consumer: (ConsumerId, &ConsumerName),
    ) -> Result<(), ServiceError> {
        match self
            .freezing_out(conn, model_id, |v| range.matches(v), consumer.0)
            .await?
        {
            Some(r) => Err(ServiceError::Conflict(frozen_message(
                &r,
                consumer.1,
                &format!("{model}@{range}"),
            ))),
            None => Ok(()),
        }
    }
}

impl crate::service::Retirements<'_> {
    /// Refuses `consumer`'s download of `model@version` during a brownout window of a
    /// retirement it depends on and has not acknowledged: 503 until the window ends.
    pub(crate) async fn refuse_if_browned_out(
        &self,
        model: &ModelName,
        version: Version,
        consumer: &ConsumerName,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let Some(r) = self.pending_retirement_covering(model, version).await? else {
            return Ok(());
        };
        let Some(window) = r.levers.brownout_at(now) else {
            return Ok(());
        };
        let db = self.store().reader();
        let Some((consumer_id, _)) = crate::store::inventory::find_consumer(db, consumer).await?
        else {
            return Ok(());
        };
        let Some(d) = repo::dependent(db, r.id, consumer_id).await? else {
            return Ok(());
        };
        if d.settled() {
            return Ok(());
        }
        let retry = (window.end - now).num_seconds().max(1);
        Err(ServiceError::BrownedOut {
            message: format!(
                "{model}@{version} is in a brownout until {} (retirement {} retires it on {}): {consumer} has not acknowledged the retirement; acknowledge it, or move off, before the versions go for good",
                window
                    .end
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.id,
                r.effective_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            retry_after_secs: u64::try_from(retry).unwrap_or(1),
        })
    }
}

/// Why a frozen-out consumer is refused, and where to go instead.
fn frozen_message(r: &Retirement, consumer: &ConsumerName, what: &str) -> String {
    let instead = match (&r.replacement_model, r.replacement_version) {
        (Some(m), Some(v)) => format!("; use {m}@{v} instead"),
        (Some(m), None) => format!("; use {m} instead"),
        _ => String::new(),
    };
    format!(
        "{what} is closed to new consumers: retirement {} retires {} on {} and froze them out when its notice went out, and {consumer} was not a dependent then{instead}",
        r.id,
        r.affected_versions
            .iter()
            .map(|v| format!("{}@{v}", r.model))
            .collect::<Vec<_>>()
            .join(", "),
        r.effective_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// The retirements freezing new consumers out, with who may still use their versions:
/// read before a group of registrations commits, so the group's plan refuses a new use
/// as a declaration would. Empty, and one query, when no retirement freezes anything.
#[derive(Debug, Clone, Default)]
pub(crate) struct FrozenOut {
    by_model:
        std::collections::HashMap<ModelId, Vec<(Retirement, std::collections::HashSet<String>)>>,
}

impl FrozenOut {
    /// Why `consumer` may not start using `model@range`, if it may not.
    pub(crate) fn refusal(
        &self,
        model: (ModelId, &ModelName),
        range: &VersionRange,
        consumer: &ConsumerName,
    ) -> Option<ServiceError> {
        let (r, _) = self
            .by_model
            .get(&model.0)?
            .iter()
            .find(|(r, dependents)| {
                r.affected_versions.iter().any(|&v| range.matches(v))
                    && !dependents.contains(consumer.as_str())
            })?;
        Some(ServiceError::Conflict(frozen_message(
            r,
            consumer,
            &format!("{}@{range}", model.1),
        )))
    }
}

impl crate::service::Retirements<'_> {
    /// What freezes new consumers out of `models` now.
    pub(crate) async fn frozen_out(&self, models: &[ModelId]) -> Result<FrozenOut, ServiceError> {
        let db = self.store().reader();
        let mut frozen = FrozenOut::default();
        for r in repo::pending_with_levers(db, models).await? {
            if !r.levers.freeze_new_consumers {
                continue;
            }
            let dependents = repo::dependents(db, r.id)
                .await?
                .into_iter()
                .map(|d| d.consumer)
                .collect();
            frozen
                .by_model
                .entry(r.model_id)
                .or_default()
                .push((r, dependents));
        }
        Ok(frozen)
    }
}
