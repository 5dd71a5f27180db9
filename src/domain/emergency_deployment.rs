//! An emergency deployment (AISVS 3.2.4): the one way a version reaches production
//! without passed validations. Someone asks, with a risk assessment and how long it may
//! run; a security actor who did not ask approves, and the version goes to production;
//! when the time is up it must have passed its validations, or it is rolled back.
//!
//! ```text
//! requested ─→ active ─→ validated | rolled_back | rollback_refused | superseded
//!     ╰──→ withdrawn
//! ```

use super::{ParseError, Version};
use chrono::{DateTime, Duration, Utc};
use std::fmt;

word_enum!(
    /// Where an emergency deployment stands.
    DeploymentState, "state", {
        /// Asked for; waiting for a security actor's approval.
        Requested => "requested",
        /// In production, until `expires_at`.
        Active => "active",
        /// Its validations passed by the expiry: it stays.
        Validated => "validated",
        /// Expired without passed validations: the previous production version is back.
        RolledBack => "rolled_back",
        /// Expired without passed validations, and rollback's checks refused the
        /// previous version (or there is none): it stays, and its contacts are told.
        RollbackRefused => "rollback_refused",
        /// Another version replaced it in production before the expiry.
        Superseded => "superseded",
        /// Withdrawn before approval.
        Withdrawn => "withdrawn",
    }
);

impl DeploymentState {
    /// Still to be approved, or running: a version holds at most one such.
    pub fn is_open(self) -> bool {
        matches!(self, DeploymentState::Requested | DeploymentState::Active)
    }
}

/// The longest an emergency deployment may run before its validations must pass.
pub const MAX_VALID_HOURS: u32 = 168;

/// How long an emergency deployment may run, checked: 1 to 168 hours (a week).
pub fn valid_hours(hours: u32) -> Result<u32, ParseError> {
    if (1..=MAX_VALID_HOURS).contains(&hours) {
        Ok(hours)
    } else {
        Err(ParseError::new(
            "validHours",
            format!("is {hours}; from 1 to {MAX_VALID_HOURS} hours are accepted"),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmergencyDeployment {
    pub id: i64,
    pub model: super::ModelName,
    pub version: Version,
    pub risk_assessment: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub valid_hours: u32,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub state: DeploymentState,
    pub settled_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
}

impl EmergencyDeployment {
    /// Approved by `by` at `at`: active until `valid_hours` later.
    pub fn approved(&self, by: &str, at: DateTime<Utc>) -> Self {
        Self {
            approved_by: Some(by.to_owned()),
            approved_at: Some(at),
            expires_at: Some(at + Duration::hours(i64::from(self.valid_hours))),
            state: DeploymentState::Active,
            ..self.clone()
        }
    }

    /// Ended in `state` at `at`, for the reason `outcome`.
    pub fn settled(&self, state: DeploymentState, outcome: String, at: DateTime<Utc>) -> Self {
        Self {
            state,
            settled_at: Some(at),
            outcome: Some(outcome),
            ..self.clone()
        }
    }

    /// Whether its time is up at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeploymentState::Active && self.expires_at.is_some_and(|at| at <= now)
    }
}

impl fmt::Display for EmergencyDeployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "emergency deployment {} of {}@{}",
            self.id, self.model, self.version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_starts_the_clock_and_only_an_active_one_falls_due() {
        let at = DateTime::UNIX_EPOCH;
        let asked = EmergencyDeployment {
            id: 1,
            model: super::super::ModelName::parse("fraud").unwrap(),
            version: Version::parse("2.0.0").unwrap(),
            risk_assessment: "fraud spike; the old model misses it".into(),
            requested_by: "owner-a".into(),
            requested_at: at,
            valid_hours: 24,
            approved_by: None,
            approved_at: None,
            expires_at: None,
            state: DeploymentState::Requested,
            settled_at: None,
            outcome: None,
        };
        assert!(
            !asked.is_due(at + Duration::days(9)),
            "not approved: never due"
        );
        let active = asked.approved("sec", at + Duration::hours(1));
        assert_eq!(active.expires_at, Some(at + Duration::hours(25)));
        assert!(!active.is_due(at + Duration::hours(24)));
        assert!(active.is_due(at + Duration::hours(25)));
        let done = active.settled(DeploymentState::Validated, "passed".into(), at);
        assert!(!done.is_due(at + Duration::days(9)) && !done.state.is_open());
        assert!(valid_hours(0).is_err() && valid_hours(169).is_err() && valid_hours(168).is_ok());
    }
}
