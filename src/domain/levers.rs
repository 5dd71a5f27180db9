//! Governance's optional levers on a retirement, the way hosted-model providers run
//! theirs: freeze new consumers out from the notice on, and tell only the dependents
//! seen lately (the rest are left to their owners, so a hub's stale edges do not flood
//! mail).

use super::ParseError;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest look-back for "seen lately": ten years.
pub const MAX_SEEN_WITHIN_DAYS: u32 = 3_650;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Levers {
    /// From scheduling on, consumers that were not dependents when the notice went out
    /// are refused the versions (downloads 410, new uses declared refused).
    #[serde(default)]
    pub freeze_new_consumers: bool,
    /// Tell only dependents seen (declared, observed or downloading) within this many
    /// days; the others are listed as informed by their owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_seen_within_days: Option<u32>,
}

impl Levers {
    pub fn parse(
        freeze_new_consumers: Option<bool>,
        notify_seen_within_days: Option<i64>,
    ) -> Result<Self, ParseError> {
        let notify_seen_within_days = notify_seen_within_days
            .map(|d| {
                u32::try_from(d)
                    .ok()
                    .filter(|d| (1..=MAX_SEEN_WITHIN_DAYS).contains(d))
                    .ok_or_else(|| {
                        ParseError::new(
                            "notifySeenWithinDays",
                            format!("must be 1 to {MAX_SEEN_WITHIN_DAYS} days, not {d}"),
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            freeze_new_consumers: freeze_new_consumers.unwrap_or(false),
            notify_seen_within_days,
        })
    }

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether sunset tells a dependent last seen at `seen`, when scheduling at `now`.
    pub fn tells(&self, seen: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match self.notify_seen_within_days {
            None => true,
            Some(days) => seen.is_some_and(|t| t >= now - Duration::days(i64::from(days))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_backs_are_bounded_and_only_the_recently_seen_are_told() {
        assert!(Levers::parse(None, Some(0)).is_err());
        assert!(Levers::parse(None, Some(3_651)).is_err());
        assert!(Levers::parse(None, None).unwrap().is_default());
        let l = Levers::parse(Some(true), Some(30)).unwrap();
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        assert!(l.tells(Some(now - Duration::days(30)), now));
        assert!(!l.tells(Some(now - Duration::days(31)), now));
        assert!(!l.tells(None, now), "never seen is not seen lately");
        assert!(Levers::default().tells(None, now));
    }
}
