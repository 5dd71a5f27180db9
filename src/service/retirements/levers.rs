//! Governance's levers on a retirement, as asked for and as enforced. Freezing new
//! consumers out: from the notice on, a consumer that was not a dependent when it went
//! out is refused the retiring versions, as a download (410 with a `Link` to the
//! retirement) and as a new use declared; dependents keep their access until the
//! effective date. Brownouts: in a window, a dependent that has not acknowledged is
//! refused its download (503 until the window ends). Telling only the recently seen is
//! decided when scheduling (`schedule.rs`, `Dependent::left_to_owner`).

use crate::domain::{
    ConsumerId, ConsumerName, ModelId, ModelName, ParseError, Retirement, Version, VersionRange,
};
use crate::service::ServiceError;
use crate::store::retirements as repo;
use chrono::{DateTime, Utc};

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
    /// Refuses `consumer`'s download of `version`, which pending retirement `r` covers,
    /// when `r`'s levers say so: frozen out (not a dependent: `Gone`), or a brownout
    /// window now and a dependent that has not settled (`BrownedOut`, 503 until the
    /// window ends). One read of the consumer and of its standing, and none without a
    /// lever pulled.
    pub(crate) async fn refuse_by_levers(
        &self,
        r: &Retirement,
        version: Version,
        consumer: &ConsumerName,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let window = r.levers.brownout_at(now);
        if !r.levers.freeze_new_consumers && window.is_none() {
            return Ok(());
        }
        let db = self.store().reader();
        let Some((consumer_id, _)) = crate::store::inventory::find_consumer(db, consumer).await?
        else {
            return Ok(());
        };
        let standing = repo::dependent(db, r.id, consumer_id).await?;
        let Some(d) = standing else {
            if !r.levers.freeze_new_consumers {
                return Ok(());
            }
            let what = format!("{}@{version}", r.model);
            return Err(ServiceError::Gone(frozen_message(r, consumer, &what)));
        };
        match window {
            Some(w) if !d.settled() => Err(ServiceError::BrownedOut {
                message: format!(
                    "{}@{version} is in a brownout until {} (retirement {} retires it on {}): {consumer} has not acknowledged the retirement; acknowledge it, or move off, before the versions go for good",
                    r.model,
                    w.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    r.id,
                    r.effective_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                retry_after_secs: u64::try_from((w.end - now).num_seconds().max(1)).unwrap_or(1),
            }),
            _ => Ok(()),
        }
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
    pub(crate) async fn frozen_out(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        models: &[ModelId],
    ) -> Result<FrozenOut, ServiceError> {
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

/// The levers as a client sends them; all optional.
#[derive(Debug, Clone, Default)]
pub struct LeverInput {
    /// Refuse consumers that are not dependents from scheduling on.
    pub freeze_new_consumers: Option<bool>,
    /// Tell only dependents seen within this many days.
    pub notify_seen_within_days: Option<i64>,
    /// Brownout windows: start and minutes.
    pub brownouts: Vec<(DateTime<Utc>, i64)>,
    /// Daily brownouts over the notice's last days.
    pub daily_brownouts: Option<DailyBrownoutsInput>,
}

#[derive(Debug, Clone)]
pub struct DailyBrownoutsInput {
    pub last_days: i64,
    /// `HH:MM`, UTC.
    pub at_utc: String,
    pub first_minutes: i64,
    pub last_minutes: i64,
}

/// The levers asked for, checked against the notice period from `now`.
pub(super) fn levers_of(
    input: &LeverInput,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<crate::domain::Levers, ServiceError> {
    let levers =
        crate::domain::Levers::parse(input.freeze_new_consumers, input.notify_seen_within_days)?;
    let mut windows: Vec<crate::domain::Brownout> = input
        .brownouts
        .iter()
        .map(|&(start, minutes)| crate::domain::Brownout {
            start,
            end: start + chrono::Duration::minutes(minutes.clamp(-1, 100_000)),
        })
        .collect();
    if let Some(d) = &input.daily_brownouts {
        let at = chrono::NaiveTime::parse_from_str(&d.at_utc, "%H:%M").map_err(|_| {
            ParseError::new(
                "dailyBrownouts.atUtc",
                format!("{:?} is not HH:MM", d.at_utc),
            )
        })?;
        if !(1..=366).contains(&d.last_days) {
            return Err(ParseError::new("dailyBrownouts.lastDays", "must be 1 to 366").into());
        }
        let daily = crate::domain::DailyBrownouts {
            last_days: d.last_days,
            at,
            first_minutes: d.first_minutes,
            last_minutes: d.last_minutes,
        };
        windows.extend(daily.windows(effective_at));
    }
    Ok(levers.with_brownouts(windows, now, effective_at)?)
}
