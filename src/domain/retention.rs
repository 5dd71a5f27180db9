//! Retention (AISVS 3.6.1, 3.3.5): which deprecated versions a model's policy no longer
//! keeps, and what becomes of the proposal to retire each.
//!
//! A version is due when it has been deprecated longer than the policy's
//! `retentionDays`, or when the model keeps more versions than `maxVersions` (the
//! oldest deprecated ones go first). Never due: a version that is not deprecated (the
//! production version among them) and the deprecated version a rollback would return to.
//!
//! ```text
//! proposed ─→ accepted (governance scheduled its retirement)
//!     ├────→ dismissed (governance keeps it; not proposed again)
//!     ╰────→ lapsed    (no longer due: the policy changed, or rollback now returns to it)
//! scheduled            (the policy's quiet period passed with no consumer seen: the
//!                       service scheduled it without a proposal)
//! ```

use super::{
    LifecycleStatus, ModelName, ModelPolicy, ParseError, RetirementId, Version, VersionId,
};
use chrono::{DateTime, Duration, Utc};
use std::fmt;

word_enum!(
    /// Where a retention proposal stands.
    ProposalState, "state", {
        /// Waiting for governance.
        Proposed => "proposed",
        /// Governance accepted it: its retirement is scheduled with the tier's notice.
        Accepted => "accepted",
        /// Governance keeps the version; it is not proposed again.
        Dismissed => "dismissed",
        /// No longer due before anyone decided.
        Lapsed => "lapsed",
        /// Scheduled by the service after the policy's quiet period.
        Scheduled => "scheduled",
    }
);

word_enum!(
    /// Which rule of the policy made a version due.
    DueBecause, "reason", {
        /// Deprecated longer than `retentionDays`.
        Retention => "retention",
        /// Beyond `maxVersions`.
        MaxVersions => "max_versions",
    }
);

impl ProposalState {
    /// Waiting for a decision.
    pub fn is_open(self) -> bool {
        self == ProposalState::Proposed
    }
}

/// A proposal to retire a version its model's policy no longer keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionProposal {
    pub id: i64,
    pub model: ModelName,
    pub version: Version,
    pub because: DueBecause,
    pub why: String,
    pub state: ProposalState,
    pub proposed_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    /// Governance's note on its decision, or why the proposal lapsed.
    pub note: Option<String>,
    /// The retirement accepting it scheduled (or the service scheduled directly).
    pub retirement: Option<RetirementId>,
}

/// One of a model's kept versions, as retention weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptVersion {
    pub id: VersionId,
    pub version: Version,
    pub status: LifecycleStatus,
    /// When it became deprecated, for a deprecated version.
    pub status_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// When it was last promoted to production, if ever.
    pub promoted_at: Option<DateTime<Utc>>,
}

/// A version the policy no longer keeps, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueVersion {
    pub id: VersionId,
    pub version: Version,
    pub because: DueBecause,
    /// In words, for the proposal and the retirement's reason.
    pub why: String,
}

/// The deprecated version a rollback would put back: the one promoted most recently.
pub fn rollback_target(versions: &[KeptVersion]) -> Option<VersionId> {
    versions
        .iter()
        .filter(|v| v.status == LifecycleStatus::Deprecated)
        .filter_map(|v| v.promoted_at.map(|at| (at, v.id)))
        .max()
        .map(|(_, id)| id)
}

/// The versions of one model that `policy` no longer keeps at `now`. `versions` are
/// every version not retired.
pub fn due_versions(
    policy: &ModelPolicy,
    versions: &[KeptVersion],
    now: DateTime<Utc>,
) -> Vec<DueVersion> {
    let keep = rollback_target(versions);
    let mut candidates: Vec<&KeptVersion> = versions
        .iter()
        .filter(|v| v.status == LifecycleStatus::Deprecated && Some(v.id) != keep)
        .collect();
    candidates.sort_by_key(|v| (v.created_at, v.version));
    let mut due = Vec::new();
    if let Some(days) = policy.retention_days {
        let kept_for = Duration::days(i64::from(days));
        for v in &candidates {
            if v.status_changed_at + kept_for <= now {
                due.push(DueVersion {
                    id: v.id,
                    version: v.version,
                    because: DueBecause::Retention,
                    why: format!(
                        "deprecated since {}, longer than the {days} days the policy keeps deprecated versions",
                        v.status_changed_at.format("%Y-%m-%d")
                    ),
                });
            }
        }
    }
    if let Some(max) = policy.max_versions {
        let kept = versions.len();
        let excess = kept.saturating_sub(max as usize);
        // Those already due for retention count towards the excess.
        let more = excess.saturating_sub(due.len());
        let beyond: Vec<DueVersion> = candidates
            .iter()
            .filter(|v| !due.iter().any(|d| d.id == v.id))
            .take(more)
            .map(|v| DueVersion {
                id: v.id,
                version: v.version,
                because: DueBecause::MaxVersions,
                why: format!(
                    "the model keeps {kept} versions and the policy at most {max}; {} is among the oldest deprecated",
                    v.version
                ),
            })
            .collect();
        due.extend(beyond);
    }
    due
}

/// Whether no consumer has been seen for the policy's quiet period, so that retention
/// may schedule the retirement itself. `last_seen` is when each dependent was last seen
/// (declared, observed or downloading); none seen at all is quiet.
pub fn quiet_enough(
    policy: &ModelPolicy,
    last_seen: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let Some(days) = policy.quiet_days else {
        return false;
    };
    let since = now - Duration::days(i64::from(days));
    last_seen.into_iter().all(|seen| seen < since)
}

/// The effective date retention gives a retirement: the tier's notice from `now`, then
/// to the next midnight UTC, so the notice reads as a date.
pub fn effective_date(earliest: DateTime<Utc>) -> DateTime<Utc> {
    let midnight = earliest
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(earliest);
    if midnight == earliest {
        earliest
    } else {
        midnight + Duration::days(1)
    }
}

impl fmt::Display for DueVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.version, self.why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(i64::from(day))
    }

    fn v(
        id: i64,
        minor: u32,
        status: LifecycleStatus,
        changed: u32,
        promoted: Option<u32>,
    ) -> KeptVersion {
        KeptVersion {
            id: VersionId(id),
            version: Version::new(1, minor, 0),
            status,
            status_changed_at: at(changed),
            created_at: at(minor),
            promoted_at: promoted.map(at),
        }
    }

    fn policy(retention: Option<u32>, max: Option<u32>) -> ModelPolicy {
        ModelPolicy {
            production_approval: false,
            environments: Vec::new(),
            max_versions: max,
            retention_days: retention,
            quiet_days: None,
        }
    }

    use LifecycleStatus::{Deprecated, Production, Staging};

    #[test]
    fn deprecated_past_retention_is_due_but_never_production_nor_the_rollback_target() {
        let versions = [
            v(1, 0, Deprecated, 10, Some(5)),
            v(2, 1, Deprecated, 20, Some(10)),
            v(3, 2, Production, 20, Some(20)),
            v(4, 3, Deprecated, 30, None),
        ];
        let due = due_versions(&policy(Some(90), None), &versions, at(125));
        let ids: Vec<i64> = due.iter().map(|d| d.id.0).collect();
        // 1.1.0 is where rollback goes; 1.3.0 was deprecated 95 days ago.
        assert_eq!(ids, vec![1, 4]);
        assert!(due.iter().all(|d| d.because == DueBecause::Retention));
        assert!(due_versions(&policy(Some(90), None), &versions, at(99)).is_empty());
        assert!(due_versions(&policy(None, None), &versions, at(999)).is_empty());
    }

    #[test]
    fn beyond_max_versions_the_oldest_deprecated_go_first() {
        let versions = [
            v(1, 0, Deprecated, 10, None),
            v(2, 1, Deprecated, 11, None),
            v(3, 2, Deprecated, 12, Some(11)),
            v(4, 3, Production, 12, Some(12)),
            v(5, 4, Staging, 13, None),
        ];
        let due = due_versions(&policy(None, Some(3)), &versions, at(14));
        assert_eq!(due.iter().map(|d| d.id.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(due.iter().all(|d| d.because == DueBecause::MaxVersions));
        // One already due by retention counts towards the excess.
        let due = due_versions(&policy(Some(3), Some(4)), &versions, at(13));
        assert_eq!(
            due.iter().map(|d| (d.id.0, d.because)).collect::<Vec<_>>(),
            vec![(1, DueBecause::Retention)]
        );
        // Only deprecated versions are ever due, however many are kept.
        assert_eq!(
            due_versions(&policy(None, Some(1)), &versions, at(14)).len(),
            2
        );
    }

    #[test]
    fn quiet_means_no_consumer_seen_for_the_period_and_only_when_the_policy_says() {
        let quiet = ModelPolicy {
            quiet_days: Some(30),
            ..policy(Some(90), None)
        };
        assert!(quiet_enough(&quiet, [], at(100)));
        assert!(quiet_enough(&quiet, [at(60)], at(100)));
        assert!(!quiet_enough(&quiet, [at(60), at(80)], at(100)));
        assert!(!quiet_enough(&policy(Some(90), None), [], at(100)));
    }

    #[test]
    fn the_effective_date_is_the_next_midnight_after_the_notice() {
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 10, 30, 0).unwrap();
        assert_eq!(
            effective_date(t),
            Utc.with_ymd_and_hms(2026, 3, 5, 0, 0, 0).unwrap()
        );
        let m = Utc.with_ymd_and_hms(2026, 3, 4, 0, 0, 0).unwrap();
        assert_eq!(effective_date(m), m);
    }
}
