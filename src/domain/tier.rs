//! Criticality tiers. The retirement policy keys notice periods on them, so the set is
//! small and closed: adding a tier means adding its notice policy.

use super::ParseError;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Outages or wrong answers harm customers or money directly.
    Critical,
    /// Important internal or customer-facing use with a fallback.
    High,
    /// Everything else.
    Standard,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Critical, Tier::High, Tier::Standard];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::High => "high",
            Tier::Standard => "standard",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                ParseError::new(
                    "tier",
                    format!("{raw:?} is not a tier; one of critical, high, standard is accepted"),
                )
            })
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
