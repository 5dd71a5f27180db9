//! The notice policy (AISVS 3.6.1): how far ahead a retirement must be announced for each
//! criticality tier, when dependents are reminded, and how long a silent dependent must
//! have shown no traffic to count as gone.

use super::Tier;
use chrono::{DateTime, Duration, Utc};
use std::fmt;

/// How much notice one tier's dependents get, and when they are reminded.
#[derive(Debug, Clone)]
pub struct TierNotice {
    pub min_notice: Duration,
    /// Reminder times (UTC), as cron schedules; a dependent is reminded at each time any
    /// of them gives, while its notice runs.
    pub reminders: Vec<cron::Schedule>,
}

/// The retirement policy: notice per criticality tier, and how long a dependent must
/// have shown no traffic to count as gone without acknowledging.
#[derive(Debug, Clone)]
pub struct NoticePolicy {
    critical: TierNotice,
    high: TierNotice,
    standard: TierNotice,
    pub quiet_period: Duration,
}

/// Refusal of an effective date that gives less than the tier's notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooEarly {
    pub tier: Tier,
    pub min_notice_days: i64,
    pub earliest: DateTime<Utc>,
}

impl fmt::Display for TooEarly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} model is retired with at least {} days' notice: the earliest effective \
             date allowed now is {}",
            self.tier,
            self.min_notice_days,
            self.earliest
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

impl NoticePolicy {
    pub fn new(
        critical: TierNotice,
        high: TierNotice,
        standard: TierNotice,
        quiet_period: Duration,
    ) -> Self {
        Self {
            critical,
            high,
            standard,
            quiet_period,
        }
    }

    pub fn tier(&self, tier: Tier) -> &TierNotice {
        match tier {
            Tier::Critical => &self.critical,
            Tier::High => &self.high,
            Tier::Standard => &self.standard,
        }
    }

    /// The earliest effective date a retirement of a `tier` model may be given at `now`.
    pub fn earliest_effective(&self, tier: Tier, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.tier(tier).min_notice
    }

    /// Refuses an effective date that gives less than the tier's notice from `now`.
    pub fn check_effective(
        &self,
        tier: Tier,
        now: DateTime<Utc>,
        effective: DateTime<Utc>,
    ) -> Result<(), TooEarly> {
        let earliest = self.earliest_effective(tier, now);
        if effective < earliest {
            return Err(TooEarly {
                tier,
                min_notice_days: self.tier(tier).min_notice.num_days(),
                earliest,
            });
        }
        Ok(())
    }

    /// The first reminder time strictly after `after` and strictly before `notice_ends`,
    /// if the tier's schedules give one.
    pub fn next_reminder(
        &self,
        tier: Tier,
        after: DateTime<Utc>,
        notice_ends: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.tier(tier)
            .reminders
            .iter()
            .filter_map(|s| s.after(&after).next())
            .filter(|&t| t < notice_ends)
            .min()
    }
}
