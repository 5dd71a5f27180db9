//! Each tier's default model policy (`[policy.critical]`, `[policy.high]`,
//! `[policy.standard]`); governance sets a model's own values over them.

use super::ConfigError;
use crate::domain::{ModelPolicy, PolicyOverrides, Tier, parse_environments};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    pub critical: TierPolicySettings,
    pub high: TierPolicySettings,
    pub standard: TierPolicySettings,
}

/// One tier's rules; see `domain::ModelPolicy` for what each means.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierPolicySettings {
    pub production_approval: bool,
    pub environments: Vec<String>,
    pub max_versions: Option<u32>,
    pub retention_days: Option<u32>,
    pub quiet_days: Option<u32>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        let tier = |approval: bool, retention: u32| TierPolicySettings {
            production_approval: approval,
            retention_days: Some(retention),
            ..Default::default()
        };
        // A second person approves what harms customers directly; deprecated versions
        // are kept longer the more critical the model, for incident response (3.3.5).
        Self {
            critical: tier(true, 365),
            high: tier(false, 180),
            standard: tier(false, 90),
        }
    }
}

impl PolicySettings {
    /// The tier's policy.
    pub fn of(&self, tier: Tier) -> ModelPolicy {
        let t = self.tier(tier);
        ModelPolicy {
            production_approval: t.production_approval,
            // Checked at start-up (`check`), so nothing is dropped here.
            environments: parse_environments(&t.environments).unwrap_or_default(),
            max_versions: t.max_versions,
            retention_days: t.retention_days,
            quiet_days: t.quiet_days,
        }
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for tier in Tier::ALL {
            self.tier(tier)
                .as_overrides()
                .checked()
                .map_err(|e| ConfigError(format!("policy.{tier}: {e}")))?;
        }
        Ok(())
    }
}

impl PolicySettings {
    fn tier(&self, tier: Tier) -> &TierPolicySettings {
        match tier {
            Tier::Critical => &self.critical,
            Tier::High => &self.high,
            Tier::Standard => &self.standard,
        }
    }
}

impl TierPolicySettings {
    fn as_overrides(&self) -> PolicyOverrides {
        PolicyOverrides {
            production_approval: Some(self.production_approval),
            environments: Some(self.environments.clone()),
            max_versions: self.max_versions,
            retention_days: self.retention_days,
            quiet_days: self.quiet_days,
        }
    }
}
