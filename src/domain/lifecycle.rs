//! The lifecycle of a model version and who may move it where.
//!
//! ```text
//! development ⇄ staging → production → deprecated
//!                                ╰──────────────┴──→ retired (by a retirement only)
//! ```
//! A model has at most one production version: promoting another deprecates the
//! current one, which is what makes rollback well defined. Promotion to production
//! requires every validation to have passed, unless a `security` actor approves an
//! emergency deployment of it (AISVS 3.2.2, 3.2.4; `service::emergency_deployments`).

use super::{ParseError, Role};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStatus {
    Development,
    Staging,
    Production,
    Deprecated,
    Retired,
}

/// What a permitted transition asks of the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionRule {
    /// Roles that may make this transition in the ordinary way.
    pub roles: &'static [Role],
    /// Whether every validation result must have passed.
    pub needs_passed_validations: bool,
    /// Role that may make the transition despite failed validations, by approving an
    /// emergency deployment.
    pub override_role: Option<Role>,
}

impl LifecycleStatus {
    pub const ALL: [LifecycleStatus; 5] = [
        LifecycleStatus::Development,
        LifecycleStatus::Staging,
        LifecycleStatus::Production,
        LifecycleStatus::Deprecated,
        LifecycleStatus::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStatus::Development => "development",
            LifecycleStatus::Staging => "staging",
            LifecycleStatus::Production => "production",
            LifecycleStatus::Deprecated => "deprecated",
            LifecycleStatus::Retired => "retired",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                ParseError::new(
                    "status",
                    format!("{raw:?} is not a lifecycle status; one of development, staging, production, deprecated, retired is accepted"),
                )
            })
    }

    /// The rule for moving from `self` to `to`, or `None` when that move is not allowed.
    pub fn rule_to(self, to: LifecycleStatus) -> Option<TransitionRule> {
        use LifecycleStatus::*;
        let ordinary = |roles| TransitionRule {
            roles,
            needs_passed_validations: false,
            override_role: None,
        };
        match (self, to) {
            (Development, Staging) | (Staging, Development) => Some(ordinary(&[Role::Owner])),
            (Staging, Production) => Some(TransitionRule {
                roles: &[Role::Owner],
                needs_passed_validations: true,
                override_role: Some(Role::Security),
            }),
            (Production, Deprecated) => Some(ordinary(&[Role::Owner, Role::Governance])),
            // `retired` is reached only through a retirement (its kill switch), never
            // by a plain transition: see `service::decommission`.
            _ => None,
        }
    }

    /// The statuses reachable from `self` in one step, for error messages.
    pub fn successors(self) -> Vec<LifecycleStatus> {
        Self::ALL
            .into_iter()
            .filter(|to| self.rule_to(*to).is_some())
            .collect()
    }
}

impl fmt::Display for LifecycleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleStatus::*;
    use super::*;

    #[test]
    fn retired_is_final_and_reached_by_no_plain_transition() {
        assert!(Retired.successors().is_empty());
        for from in LifecycleStatus::ALL {
            assert!(from.rule_to(Retired).is_none(), "{from} -> retired");
        }
        assert!(Development.rule_to(Production).is_none());
        assert!(Production.rule_to(Development).is_none());
    }

    #[test]
    fn only_promotion_to_production_needs_validations_and_allows_a_security_override() {
        for from in LifecycleStatus::ALL {
            for to in LifecycleStatus::ALL {
                if let Some(rule) = from.rule_to(to) {
                    let is_promotion = (from, to) == (Staging, Production);
                    assert_eq!(rule.needs_passed_validations, is_promotion);
                    assert_eq!(rule.override_role.is_some(), is_promotion);
                }
            }
        }
    }

    #[test]
    fn every_status_parses_from_its_name() {
        for s in LifecycleStatus::ALL {
            assert_eq!(LifecycleStatus::parse(s.as_str()), Ok(s));
        }
        assert!(LifecycleStatus::parse("live").is_err());
    }
}
