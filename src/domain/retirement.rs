//! Retirements (AISVS 3.6.1): the states one moves through, and the notice policy that
//! decides how far ahead it must be announced and when dependents are reminded.
//!
//! ```text
//!             ┌──────────────► cancelled ◄──────────────┐
//!             │                    ▲                      │
//! scheduled ──┼──► ready ──► executing ──► retired        │
//!   ▲    │    │      │                                    │
//!   │    ▼    │      ▼                                    │
//!   └─ needs-decision ────────────────────────────────────┘
//! ```
//! A retirement is *ready* when every dependent's notice has run out and each has
//! acknowledged or shown no traffic; a dependent found later sends it back to
//! *scheduled* (its own notice runs), or to *needs-decision* when that notice would end
//! after the effective date. Executing and retired belong to decommissioning.

use super::{ModelId, ModelName, ParseError, RetirementId, Version, VersionRange};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::fmt;

word_enum!(
    /// Where a retirement stands (see the module comment for the moves between them).
    RetirementState, "retirement state", {
        Scheduled => "scheduled",
        NeedsDecision => "needs-decision",
        Ready => "ready",
        Executing => "executing",
        Retired => "retired",
        Cancelled => "cancelled",
    }
);

impl RetirementState {
    /// Still announced and watched: dependents are notified and reminded, downloads carry
    /// the Sunset header, new dependents are looked for.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            RetirementState::Scheduled | RetirementState::NeedsDecision | RetirementState::Ready
        )
    }

    /// Whether a retirement in this state may move to `next`.
    pub fn may_become(self, next: RetirementState) -> bool {
        use RetirementState::*;
        matches!(
            (self, next),
            (Scheduled, Ready | NeedsDecision | Cancelled)
                | (NeedsDecision, Scheduled | Cancelled)
                | (Ready, Executing | Scheduled | NeedsDecision | Cancelled)
                | (Executing, Retired)
        )
    }
}

/// A move of a retirement the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalMove {
    pub id: RetirementId,
    pub from: RetirementState,
    pub to: RetirementState,
}

impl fmt::Display for IllegalMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retirement {} is {}; it cannot become {}",
            self.id, self.from, self.to
        )
    }
}

impl std::error::Error for IllegalMove {}

word_enum!(
    /// How a dependent of a retirement came to light.
    FoundBy, "found by", {
        /// The graph walk made when the retirement was scheduled.
        Scheduling => "scheduling",
        /// A later inventory change (a declaration, a registration webhook).
        GraphChange => "graph-change",
        /// Traffic a scan saw during the notice period.
        Scan => "scan",
        /// A download of an affected version during the notice period.
        Download => "download",
    }
);

word_enum!(
    /// Where a dependent's request for more time stands.
    ExtensionState, "extension state", {
        Requested => "requested",
        Granted => "granted",
        Refused => "refused",
    }
);

/// What decides whether one dependent still holds a retirement back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependentStanding {
    pub found_at: DateTime<Utc>,
    pub notice_ends_at: DateTime<Utc>,
    pub acknowledged: bool,
    pub overridden: bool,
    /// The last use seen (scan or download), if any.
    pub last_traffic_at: Option<DateTime<Utc>>,
}

/// Why a dependent still holds its retirement back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Its notice has not run out yet.
    NoticeRunning { until: DateTime<Utc> },
    /// Its notice ran out, but it neither acknowledged nor has been quiet long enough.
    Unacknowledged { quiet_from: DateTime<Utc> },
}

impl DependentStanding {
    /// `None` when this dependent no longer holds the retirement back at `now`: governance
    /// overrode it, or its notice ran out and it acknowledged or showed no traffic for
    /// `quiet_period`. Quiet is counted from when it was found or last seen in use,
    /// whichever is later, so a dependent found yesterday is not quiet for two weeks.
    pub fn holding(&self, now: DateTime<Utc>, quiet_period: Duration) -> Option<Holding> {
        if self.overridden {
            return None;
        }
        if now < self.notice_ends_at {
            return Some(Holding::NoticeRunning {
                until: self.notice_ends_at,
            });
        }
        if self.acknowledged {
            return None;
        }
        let watched_since = self
            .last_traffic_at
            .map_or(self.found_at, |t| t.max(self.found_at));
        let quiet_from = watched_since + quiet_period;
        (now < quiet_from).then_some(Holding::Unacknowledged { quiet_from })
    }
}

/// A retirement, parsed. Serialised as audit records show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retirement {
    pub id: RetirementId,
    #[serde(skip)]
    pub model_id: ModelId,
    pub model: ModelName,
    #[serde(serialize_with = "display")]
    pub selection: VersionRange,
    pub affected_versions: Vec<Version>,
    pub reason: String,
    pub effective_at: DateTime<Utc>,
    pub replacement_model: Option<ModelName>,
    pub replacement_version: Option<Version>,
    pub state: RetirementState,
    pub sequence: i32,
    pub decision_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    /// Freeze and tell-only-recent, as governance set them when scheduling.
    pub levers: super::Levers,
}

fn display<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Retirement {
    /// An emergency retirement of `affected` (the versions `selection` names), created
    /// executing: its kill switch is pulled in the same transaction.
    pub fn emergency(
        (model_id, model): (ModelId, ModelName),
        (selection, affected): (VersionRange, Vec<Version>),
        assessment: &super::Text,
        by: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: RetirementId(0),
            model_id,
            model,
            selection,
            affected_versions: affected,
            reason: format!("emergency: {}", assessment.as_str()),
            effective_at: now,
            replacement_model: None,
            replacement_version: None,
            state: RetirementState::Executing,
            sequence: 0,
            decision_note: None,
            created_at: now,
            created_by: by.to_owned(),
            updated_at: now,
            levers: super::Levers::default(),
        }
    }

    /// This retirement moved to `next` at `now`, with its next sequence number and `note`
    /// as its decision note when one is given; refused when the state machine does not
    /// allow the move. Every change of a retirement's state goes through here.
    pub fn moved_to(
        &self,
        next: RetirementState,
        now: DateTime<Utc>,
        note: Option<String>,
    ) -> Result<Self, IllegalMove> {
        if !self.state.may_become(next) {
            return Err(self.illegal(next));
        }
        Ok(self.with_state(next, now, note))
    }

    /// This retirement with governance's decision `note` at `now`, and its next sequence
    /// number (the iCalendar SEQUENCE of its event); its state is left to its dependents.
    pub fn decided(&self, note: String, now: DateTime<Utc>) -> Self {
        Self {
            decision_note: Some(note),
            sequence: self.sequence + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// This retirement postponed to `effective_at`, for `reason` (see [`Self::decided`]).
    pub fn postponed(
        &self,
        effective_at: DateTime<Utc>,
        reason: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            effective_at,
            ..self.decided(reason, now)
        }
    }

    /// An executing emergency whose kill switch is lifted before its erasure: cancelled,
    /// outside the workflow (the service checks that nothing was erased yet).
    pub fn lifted(&self, now: DateTime<Utc>, note: String) -> Result<Self, IllegalMove> {
        if self.state != RetirementState::Executing {
            return Err(self.illegal(RetirementState::Cancelled));
        }
        Ok(self.with_state(RetirementState::Cancelled, now, Some(note)))
    }

    /// A retirement an emergency superseded (and so cancelled), put back in the pending
    /// state it had, when that emergency is lifted.
    pub fn restored_to(
        &self,
        prior: RetirementState,
        now: DateTime<Utc>,
        note: String,
    ) -> Result<Self, IllegalMove> {
        if self.state != RetirementState::Cancelled || !prior.is_pending() {
            return Err(self.illegal(prior));
        }
        Ok(self.with_state(prior, now, Some(note)))
    }

    fn with_state(&self, state: RetirementState, now: DateTime<Utc>, note: Option<String>) -> Self {
        Self {
            state,
            sequence: self.sequence + 1,
            decision_note: note.or_else(|| self.decision_note.clone()),
            updated_at: now,
            ..self.clone()
        }
    }

    fn illegal(&self, to: RetirementState) -> IllegalMove {
        IllegalMove {
            id: self.id,
            from: self.state,
            to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NoticePolicy, Tier, TierNotice};
    use std::str::FromStr;

    fn retirement(state: RetirementState) -> Retirement {
        let t = at("2026-12-01T00:00:00Z");
        Retirement {
            id: RetirementId(7),
            model_id: ModelId(1),
            model: ModelName::parse("fraud").unwrap(),
            selection: VersionRange::parse("^2").unwrap(),
            affected_versions: vec![Version::parse("2.1.0").unwrap()],
            reason: "superseded".into(),
            effective_at: t,
            replacement_model: None,
            replacement_version: None,
            state,
            sequence: 3,
            decision_note: Some("kept".into()),
            created_at: t,
            created_by: "gov".into(),
            updated_at: t,
            levers: crate::domain::Levers::default(),
        }
    }

    #[test]
    fn a_retirement_moves_only_as_the_state_machine_allows() {
        use RetirementState::*;
        let now = at("2026-12-02T00:00:00Z");
        let ready = retirement(Ready);
        let executing = ready.moved_to(Executing, now, None).unwrap();
        assert_eq!((executing.state, executing.sequence), (Executing, 4));
        assert_eq!(executing.updated_at, now);
        assert_eq!(executing.decision_note.as_deref(), Some("kept"));
        let retired = executing.moved_to(Retired, now, None).unwrap();
        for (from, to) in [
            (Retired, Scheduled),
            (Retired, Cancelled),
            (Cancelled, Ready),
            (Scheduled, Executing),
        ] {
            let refused = retirement(from).moved_to(to, now, None).unwrap_err();
            assert_eq!(
                refused.to_string(),
                format!("retirement 7 is {from}; it cannot become {to}")
            );
        }
        assert!(retired.moved_to(Executing, now, None).is_err());
        // Only a cancelled retirement is restored, and only to a pending state.
        let cancelled = ready
            .moved_to(Cancelled, now, Some("superseded".into()))
            .unwrap();
        let back = cancelled.restored_to(Ready, now, "lifted".into()).unwrap();
        assert_eq!(
            (back.state, back.sequence, back.decision_note.as_deref()),
            (Ready, 5, Some("lifted"))
        );
        assert!(cancelled.restored_to(Executing, now, "x".into()).is_err());
        assert!(ready.restored_to(Scheduled, now, "x".into()).is_err());
        // Lifting cancels an executing emergency, and nothing else.
        assert_eq!(
            executing.lifted(now, "lifted".into()).unwrap().state,
            Cancelled
        );
        assert!(ready.lifted(now, "x".into()).is_err());
        assert!(retired.lifted(now, "x".into()).is_err());
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn weekly(days: i64) -> TierNotice {
        TierNotice {
            min_notice: Duration::days(days),
            reminders: vec![cron::Schedule::from_str("0 0 9 * * Mon").unwrap()],
        }
    }

    fn policy() -> NoticePolicy {
        NoticePolicy::new(weekly(90), weekly(30), weekly(7), Duration::days(14))
    }

    #[test]
    fn a_dependent_holds_back_until_its_notice_ends_and_it_acknowledges_or_goes_quiet() {
        let found = at("2026-12-01T00:00:00Z");
        let ends = at("2027-03-01T00:00:00Z");
        let quiet = Duration::days(14);
        let d = DependentStanding {
            found_at: found,
            notice_ends_at: ends,
            acknowledged: true,
            overridden: false,
            last_traffic_at: None,
        };
        // Acknowledging does not end the notice early.
        assert_eq!(
            d.holding(ends - Duration::seconds(1), quiet),
            Some(Holding::NoticeRunning { until: ends })
        );
        assert_eq!(d.holding(ends, quiet), None);
        // Not acknowledged: held until quiet for 14 days after its last traffic.
        let seen = at("2027-02-25T00:00:00Z");
        let d = DependentStanding {
            acknowledged: false,
            last_traffic_at: Some(seen),
            ..d
        };
        assert_eq!(
            d.holding(ends, quiet),
            Some(Holding::Unacknowledged {
                quiet_from: seen + quiet
            })
        );
        assert_eq!(d.holding(seen + quiet, quiet), None);
        // Never seen: quiet counts from when it was found.
        let d = DependentStanding {
            last_traffic_at: None,
            found_at: ends - Duration::days(1),
            ..d
        };
        assert!(d.holding(ends, quiet).is_some());
        // An override releases it at once, notice or not.
        let d = DependentStanding {
            overridden: true,
            ..d
        };
        assert_eq!(d.holding(found, quiet), None);
    }

    #[test]
    fn states_move_only_along_the_workflow() {
        use RetirementState::*;
        let allowed = [
            (Scheduled, Ready),
            (Scheduled, NeedsDecision),
            (Scheduled, Cancelled),
            (NeedsDecision, Scheduled),
            (NeedsDecision, Cancelled),
            (Ready, Executing),
            (Ready, Scheduled),
            (Ready, NeedsDecision),
            (Ready, Cancelled),
            (Executing, Retired),
        ];
        for &from in RetirementState::ALL {
            for &to in RetirementState::ALL {
                assert_eq!(
                    from.may_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
            assert_eq!(RetirementState::parse(from.as_str()), Ok(from));
        }
        // Nothing leaves the two ends, and executing cannot be called off.
        assert!(!Executing.may_become(Cancelled));
        assert!(RetirementState::parse("done").is_err());
        assert!(Ready.is_pending() && !Executing.is_pending() && !Cancelled.is_pending());
    }

    #[test]
    fn an_effective_date_inside_the_notice_period_is_refused_with_the_earliest_allowed() {
        let now = at("2026-12-01T10:00:00Z");
        let p = policy();
        let err = p
            .check_effective(Tier::Critical, now, at("2027-02-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(err.earliest, at("2027-03-01T10:00:00Z"));
        assert_eq!(
            err.to_string(),
            "a critical model is retired with at least 90 days' notice: the earliest \
             effective date allowed now is 2027-03-01T10:00:00Z"
        );
        assert!(p.check_effective(Tier::Critical, now, err.earliest).is_ok());
        assert!(
            p.check_effective(Tier::Standard, now, at("2026-12-08T10:00:00Z"))
                .is_ok()
        );
    }

    #[test]
    fn a_ninety_day_notice_has_a_weekly_reminder_until_it_ends() {
        let p = policy();
        let start = at("2026-12-01T10:00:00Z"); // a Tuesday
        let ends = p.earliest_effective(Tier::Critical, start);
        let mut reminders = Vec::new();
        let mut after = start;
        while let Some(next) = p.next_reminder(Tier::Critical, after, ends) {
            reminders.push(next);
            after = next;
        }
        assert_eq!(reminders.len(), 13);
        assert_eq!(reminders[0], at("2026-12-07T09:00:00Z"));
        assert_eq!(reminders[12], at("2027-03-01T09:00:00Z"));
        assert!(
            reminders
                .windows(2)
                .all(|w| w[1] - w[0] == Duration::days(7))
        );
        // None at or after the end of the notice.
        assert_eq!(p.next_reminder(Tier::Critical, reminders[12], ends), None);
    }
}
