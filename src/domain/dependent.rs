//! One dependent of a retirement: its own notice clock, reminders, acknowledgement,
//! request for more time and governance's release. Each change is a method, so the
//! rules of a change (an acknowledgement stops reminders, a decision needs a pending
//! request) live here and nowhere else.

use super::{ConsumerId, ExtensionState, FoundBy, RetirementId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One dependent of a retirement, with its own notice clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependent {
    pub retirement_id: RetirementId,
    pub consumer_id: ConsumerId,
    pub consumer: String,
    pub found_at: DateTime<Utc>,
    pub found_by: FoundBy,
    /// The explaining path when found, dependent first (`checkout uses fraud@^2`, …).
    pub path: Vec<String>,
    pub notice_ends_at: DateTime<Utc>,
    pub next_reminder_at: Option<DateTime<Utc>>,
    pub notified_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub last_traffic_at: Option<DateTime<Utc>>,
    pub extension_state: Option<ExtensionState>,
    pub extension_until: Option<DateTime<Utc>>,
    pub extension_reason: Option<String>,
    pub override_note: Option<String>,
    pub overridden_by: Option<String>,
    pub overridden_at: Option<DateTime<Utc>>,
    /// Not seen within the retirement's look-back when it was scheduled: sunset sends it
    /// no notice, and its owner is expected to tell it.
    pub informed_by_owner: bool,
}

/// A decision on a request for more time that no dependent made (or that was decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoPendingExtension;

/// Who was found to depend on a retirement's versions, and how.
pub struct Finding {
    pub consumer_id: ConsumerId,
    pub consumer: String,
    /// The explaining path, dependent first.
    pub path: Vec<String>,
    /// The last use seen on its own edge (scan or download evidence).
    pub last_traffic_at: Option<DateTime<Utc>>,
}

impl Dependent {
    /// `finding` as retirement `retirement_id` records it, found by `found_by` at `at`
    /// with its notice ending at `notice_ends_at`: not yet told, acknowledged or decided.
    pub fn found(
        retirement_id: RetirementId,
        finding: Finding,
        (found_by, at): (FoundBy, DateTime<Utc>),
        notice_ends_at: DateTime<Utc>,
        next_reminder_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            retirement_id,
            consumer_id: finding.consumer_id,
            consumer: finding.consumer,
            found_at: at,
            found_by,
            path: finding.path,
            notice_ends_at,
            next_reminder_at,
            notified_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            last_traffic_at: finding.last_traffic_at,
            extension_state: None,
            extension_until: None,
            extension_reason: None,
            override_note: None,
            overridden_by: None,
            overridden_at: None,
            informed_by_owner: false,
        }
    }

    /// This dependent left to its owner to tell: no notice, no reminder.
    pub fn left_to_owner(self) -> Self {
        Self {
            informed_by_owner: true,
            next_reminder_at: None,
            ..self
        }
    }

    /// Whether it no longer needs telling: it acknowledged, or governance released it.
    pub fn settled(&self) -> bool {
        self.acknowledged_at.is_some() || self.overridden_at.is_some()
    }

    /// `at`, unless this dependent is reminded no more: settled, or left to its owner.
    fn reminded(&self, at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        if self.settled() || self.informed_by_owner {
            None
        } else {
            at
        }
    }

    /// Acknowledged by `by` at `at`: no more reminders.
    pub fn acknowledged(&self, by: &str, at: DateTime<Utc>) -> Self {
        Self {
            acknowledged_at: Some(at),
            acknowledged_by: Some(by.to_owned()),
            next_reminder_at: None,
            ..self.clone()
        }
    }

    /// Asks for more time, until `until`, for `reason`.
    pub fn extension_requested(&self, until: DateTime<Utc>, reason: &str) -> Self {
        Self {
            extension_state: Some(ExtensionState::Requested),
            extension_until: Some(until),
            extension_reason: Some(reason.to_owned()),
            ..self.clone()
        }
    }

    /// Its pending request decided with `note`: granted, its notice ends when it asked
    /// and reminders follow `reminder_for` that end; or refused, its dates unchanged.
    pub fn extension_decided(
        &self,
        grant: bool,
        note: &str,
        reminder_for: impl FnOnce(DateTime<Utc>) -> Option<DateTime<Utc>>,
    ) -> Result<Self, NoPendingExtension> {
        let (Some(ExtensionState::Requested), Some(until)) =
            (self.extension_state, self.extension_until)
        else {
            return Err(NoPendingExtension);
        };
        let reason = format!(
            "{} (decision: {note})",
            self.extension_reason.clone().unwrap_or_default()
        );
        Ok(if grant {
            Self {
                extension_state: Some(ExtensionState::Granted),
                notice_ends_at: until,
                next_reminder_at: self.reminded(reminder_for(until)),
                extension_reason: Some(reason),
                ..self.clone()
            }
        } else {
            Self {
                extension_state: Some(ExtensionState::Refused),
                extension_reason: Some(reason),
                ..self.clone()
            }
        })
    }

    /// Released by governance (`by`, with `note`): it no longer holds the retirement
    /// back, and is not reminded.
    pub fn overridden(&self, by: &str, note: &str, at: DateTime<Utc>) -> Self {
        Self {
            override_note: Some(note.to_owned()),
            overridden_by: Some(by.to_owned()),
            overridden_at: Some(at),
            next_reminder_at: None,
            ..self.clone()
        }
    }

    /// Its notice now ends at `ends`; reminded from `reminder` unless it is settled.
    pub fn notice_ending(&self, ends: DateTime<Utc>, reminder: Option<DateTime<Utc>>) -> Self {
        Self {
            notice_ends_at: ends,
            next_reminder_at: self.reminded(reminder),
            ..self.clone()
        }
    }

    /// Traffic last seen at `seen`, when that is newer than what it holds.
    pub fn with_traffic(&self, seen: Option<DateTime<Utc>>) -> Option<Self> {
        (seen > self.last_traffic_at).then(|| Self {
            last_traffic_at: seen,
            ..self.clone()
        })
    }

    /// Its next reminder at `at`, or none once it is settled.
    pub fn reminded_next(&self, at: Option<DateTime<Utc>>) -> Self {
        Self {
            next_reminder_at: self.reminded(at),
            ..self.clone()
        }
    }

    /// No more reminders: the retirement they were for has ended.
    pub fn unreminded(&self) -> Self {
        Self {
            next_reminder_at: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn dependent() -> Dependent {
        let finding = Finding {
            consumer_id: ConsumerId(2),
            consumer: "checkout".into(),
            path: vec![],
            last_traffic_at: None,
        };
        Dependent::found(
            RetirementId(1),
            finding,
            (FoundBy::Scheduling, at("2026-12-01T00:00:00Z")),
            at("2026-12-31T00:00:00Z"),
            Some(at("2026-12-07T09:00:00Z")),
        )
    }

    #[test]
    fn a_settled_dependent_is_not_reminded_when_its_notice_moves() {
        let d = dependent().acknowledged("ops", at("2026-12-02T00:00:00Z"));
        assert!(d.settled() && d.next_reminder_at.is_none());
        let moved = d.notice_ending(at("2027-01-31T00:00:00Z"), Some(at("2026-12-14T09:00:00Z")));
        assert_eq!(moved.notice_ends_at, at("2027-01-31T00:00:00Z"));
        assert_eq!(moved.next_reminder_at, None);
        let open =
            dependent().notice_ending(at("2027-01-31T00:00:00Z"), Some(at("2026-12-14T09:00:00Z")));
        assert_eq!(open.next_reminder_at, Some(at("2026-12-14T09:00:00Z")));
    }

    #[test]
    fn only_a_pending_request_is_decided_and_only_a_grant_moves_the_notice() {
        assert_eq!(
            dependent().extension_decided(true, "ok", |_| None),
            Err(NoPendingExtension)
        );
        let asked = dependent().extension_requested(at("2027-02-15T00:00:00Z"), "one sprint");
        let granted = asked.extension_decided(true, "fair", Some).unwrap();
        assert_eq!(granted.extension_state, Some(ExtensionState::Granted));
        assert_eq!(granted.notice_ends_at, at("2027-02-15T00:00:00Z"));
        assert_eq!(
            granted.extension_reason.as_deref(),
            Some("one sprint (decision: fair)")
        );
        assert_eq!(
            granted.extension_decided(false, "again", |_| None),
            Err(NoPendingExtension),
            "decided once"
        );
        let refused = asked.extension_decided(false, "no", |_| None).unwrap();
        assert_eq!(refused.extension_state, Some(ExtensionState::Refused));
        assert_eq!(refused.notice_ends_at, asked.notice_ends_at);
    }

    #[test]
    fn an_override_stops_reminders() {
        let d = dependent().overridden("gov", "decommissioned anyway", at("2026-12-03T00:00:00Z"));
        assert!(d.settled());
        assert_eq!(d.next_reminder_at, None);
        assert_eq!(d.overridden_by.as_deref(), Some("gov"));
    }
}
