//! A model's policy: the rules its promotions, declarations and versions must keep.
//!
//! Each tier has defaults (the configuration's `[policy.<tier>]`); governance may set a
//! model's own value of any rule, and the rest follow the tier. Encryption of artifacts
//! and signatures before staging are rules too, but not choices: sunset encrypts every
//! artifact with a key of its own and serves no unsigned version, so the policy shows
//! them as always on and refuses to turn them off.

use super::{Environment, ParseError};

/// The rules in force for one model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPolicy {
    /// Promotion to production needs an approval by a second person, with a reference
    /// (a change ticket).
    pub production_approval: bool,
    /// The environments its consumers may declare use from; empty: any.
    pub environments: Vec<Environment>,
    /// The most versions kept (every status but retired).
    pub max_versions: Option<u32>,
    /// How long a deprecated version is kept before retention proposes its retirement.
    pub retention_days: Option<u32>,
    /// When set, retention schedules a due version's retirement itself (with the tier's
    /// notice) once no consumer of it has been seen for this many days; unset, it only
    /// proposes.
    pub quiet_days: Option<u32>,
}

/// A model's own values, each standing over its tier's default when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_versions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_days: Option<u32>,
}

pub const MAX_ENVIRONMENTS: usize = 32;
pub const MAX_VERSIONS_KEPT: u32 = 10_000;
pub const MAX_RETENTION_DAYS: u32 = 3_650;

impl PolicyOverrides {
    /// Checks every value given: environments are names (at most 32, none twice), the
    /// most versions 1 to 10,000, retention and the quiet period 1 to 3,650 days.
    pub fn checked(self) -> Result<Self, ParseError> {
        if let Some(envs) = &self.environments {
            parse_environments(envs)?;
        }
        if let Some(n) = self.max_versions
            && !(1..=MAX_VERSIONS_KEPT).contains(&n)
        {
            return Err(ParseError::new(
                "maxVersions",
                format!("is {n}; from 1 to {MAX_VERSIONS_KEPT} versions are accepted"),
            ));
        }
        for (field, days) in [
            ("retentionDays", self.retention_days),
            ("quietDays", self.quiet_days),
        ] {
            if let Some(d) = days
                && !(1..=MAX_RETENTION_DAYS).contains(&d)
            {
                return Err(ParseError::new(
                    field,
                    format!("is {d}; from 1 to {MAX_RETENTION_DAYS} days are accepted"),
                ));
            }
        }
        Ok(self)
    }

    /// The rules in force: each value set here over `defaults`.
    pub fn over(&self, defaults: &ModelPolicy) -> ModelPolicy {
        ModelPolicy {
            production_approval: self
                .production_approval
                .unwrap_or(defaults.production_approval),
            environments: match &self.environments {
                // Checked when set, and stored only then.
                Some(envs) => parse_environments(envs).unwrap_or_default(),
                None => defaults.environments.clone(),
            },
            max_versions: self.max_versions.or(defaults.max_versions),
            retention_days: self.retention_days.or(defaults.retention_days),
            quiet_days: self.quiet_days.or(defaults.quiet_days),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The rules set here (rather than by the tier), by their API names.
    pub fn own_rules(&self) -> Vec<&'static str> {
        [
            ("productionApproval", self.production_approval.is_some()),
            ("environments", self.environments.is_some()),
            ("maxVersions", self.max_versions.is_some()),
            ("retentionDays", self.retention_days.is_some()),
            ("quietDays", self.quiet_days.is_some()),
        ]
        .into_iter()
        .filter_map(|(rule, set)| set.then_some(rule))
        .collect()
    }
}

pub fn parse_environments(raw: &[String]) -> Result<Vec<Environment>, ParseError> {
    if raw.len() > MAX_ENVIRONMENTS {
        return Err(ParseError::new(
            "environments",
            format!(
                "lists {}; at most {MAX_ENVIRONMENTS} are accepted",
                raw.len()
            ),
        ));
    }
    let mut envs: Vec<Environment> = Vec::with_capacity(raw.len());
    for e in raw {
        let env = Environment::parse(e)?;
        if envs.contains(&env) {
            return Err(ParseError::new(
                "environments",
                format!("lists {env} twice"),
            ));
        }
        envs.push(env);
    }
    Ok(envs)
}

/// Why a consumer in `env` may not declare use under the rule `allowed` (empty: any).
pub fn environment_refusal(allowed: &[Environment], env: &Environment) -> Option<String> {
    if allowed.is_empty() || allowed.contains(env) {
        return None;
    }
    let allowed: Vec<&str> = allowed.iter().map(Environment::as_str).collect();
    Some(format!(
        "rule environments: consumers may declare use from {} only, not {env}",
        allowed.join(", ")
    ))
}

impl ModelPolicy {
    /// Why a consumer in `env` may not declare use of the model, if it may not.
    pub fn refuses_environment(&self, env: &Environment) -> Option<String> {
        environment_refusal(&self.environments, env)
    }

    /// Why a model holding `kept` versions may not take another, if it may not.
    pub fn refuses_new_version(&self, kept: u64) -> Option<String> {
        let max = self.max_versions?;
        (kept >= u64::from(max)).then(|| {
            let kept_versions = if max == 1 { "version is" } else { "versions are" };
            format!(
                "rule maxVersions: at most {max} {kept_versions} kept (every status but retired) and it holds {kept}; retire one first"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ModelPolicy {
        ModelPolicy {
            production_approval: true,
            environments: vec![Environment::parse("prod").unwrap()],
            max_versions: None,
            retention_days: Some(90),
            quiet_days: None,
        }
    }

    #[test]
    fn a_models_values_stand_over_its_tiers() {
        let own = PolicyOverrides {
            production_approval: Some(false),
            max_versions: Some(3),
            ..Default::default()
        };
        let p = own.over(&defaults());
        assert!(!p.production_approval);
        assert_eq!(p.max_versions, Some(3));
        assert_eq!(p.retention_days, Some(90), "the tier's");
        assert_eq!(p.environments.len(), 1, "the tier's");
        assert_eq!(PolicyOverrides::default().over(&defaults()), defaults());
    }

    #[test]
    fn values_are_bounded_and_environments_named_once() {
        let bad = [
            PolicyOverrides {
                max_versions: Some(0),
                ..Default::default()
            },
            PolicyOverrides {
                retention_days: Some(4000),
                ..Default::default()
            },
            PolicyOverrides {
                environments: Some(vec!["prod".into(), "prod".into()]),
                ..Default::default()
            },
            PolicyOverrides {
                environments: Some(vec!["Prod EU".into()]),
                ..Default::default()
            },
            PolicyOverrides {
                environments: Some(vec!["e".into(); 33]),
                ..Default::default()
            },
        ];
        for b in bad {
            assert!(b.clone().checked().is_err(), "{b:?}");
        }
    }

    #[test]
    fn refusals_name_the_rule() {
        let p = defaults();
        assert!(
            p.refuses_environment(&Environment::parse("prod").unwrap())
                .is_none()
        );
        let why = p
            .refuses_environment(&Environment::parse("dev").unwrap())
            .unwrap();
        assert!(why.starts_with("rule environments"), "{why}");
        let kept = ModelPolicy {
            max_versions: Some(2),
            ..p
        };
        assert!(kept.refuses_new_version(1).is_none());
        assert!(
            kept.refuses_new_version(2)
                .unwrap()
                .starts_with("rule maxVersions")
        );
    }
}
