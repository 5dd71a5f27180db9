//! Governance's optional levers on a retirement, the way hosted-model providers run
//! theirs: freeze new consumers out from the notice on, and tell only the dependents
//! seen lately (the rest are left to their owners, so a hub's stale edges do not flood
//! mail).

use super::ParseError;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest look-back for "seen lately": ten years.
pub const MAX_SEEN_WITHIN_DAYS: u32 = 3_650;
/// The most brownout windows one retirement may have: one a day for a year.
pub const MAX_BROWNOUTS: usize = 366;
/// The longest brownout window: a day.
pub const MAX_BROWNOUT_MINUTES: i64 = 1_440;

/// A window of the notice period in which downloads by dependents that have not
/// acknowledged are answered 503, so a team that ignored its mail finds out in a test
/// run rather than in the outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Brownout {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Daily brownouts over the notice's last days, growing from `first_minutes` to
/// `last_minutes`, each starting at `at` (UTC).
#[derive(Debug, Clone, Copy)]
pub struct DailyBrownouts {
    pub last_days: i64,
    pub at: chrono::NaiveTime,
    pub first_minutes: i64,
    pub last_minutes: i64,
}

impl DailyBrownouts {
    /// The windows before `effective_at`, oldest first.
    pub fn windows(&self, effective_at: DateTime<Utc>) -> Vec<Brownout> {
        let days = self.last_days.max(1);
        (0..days)
            .map(|i| {
                let day = (effective_at - Duration::days(days - i)).date_naive();
                let start = day.and_time(self.at).and_utc();
                let grow = if days == 1 {
                    0
                } else {
                    (self.last_minutes - self.first_minutes) * i / (days - 1)
                };
                let minutes = self.first_minutes + grow;
                Brownout {
                    start,
                    end: start + Duration::minutes(minutes),
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Windows of the notice period in which downloads by dependents that have not
    /// acknowledged answer 503; sorted, apart, and before the effective date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brownouts: Vec<Brownout>,
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
            brownouts: Vec::new(),
        })
    }

    /// These levers with `windows` as brownouts, checked against the notice period
    /// `[now, effective_at)`: each 1 minute to a day long, inside the period, not
    /// overlapping, at most [`MAX_BROWNOUTS`].
    pub fn with_brownouts(
        mut self,
        mut windows: Vec<Brownout>,
        now: DateTime<Utc>,
        effective_at: DateTime<Utc>,
    ) -> Result<Self, ParseError> {
        let bad = |why: String| ParseError::new("brownouts", why);
        if windows.len() > MAX_BROWNOUTS {
            return Err(bad(format!(
                "at most {MAX_BROWNOUTS} windows, not {}",
                windows.len()
            )));
        }
        windows.sort();
        for w in &windows {
            let minutes = (w.end - w.start).num_minutes();
            if !(1..=MAX_BROWNOUT_MINUTES).contains(&minutes) {
                return Err(bad(format!(
                    "the window at {} lasts {minutes} minutes; 1 to {MAX_BROWNOUT_MINUTES} are accepted",
                    w.start.to_rfc3339()
                )));
            }
            if w.start < now || w.end > effective_at {
                return Err(bad(format!(
                    "the window at {} is outside the notice period ({} to {})",
                    w.start.to_rfc3339(),
                    now.to_rfc3339(),
                    effective_at.to_rfc3339()
                )));
            }
        }
        if let Some(pair) = windows.windows(2).find(|p| p[1].start < p[0].end) {
            return Err(bad(format!(
                "the windows at {} and {} overlap",
                pair[0].start.to_rfc3339(),
                pair[1].start.to_rfc3339()
            )));
        }
        self.brownouts = windows;
        Ok(self)
    }

    /// The brownout window `now` falls in, if any.
    pub fn brownout_at(&self, now: DateTime<Utc>) -> Option<Brownout> {
        self.brownouts
            .iter()
            .copied()
            .find(|w| w.start <= now && now < w.end)
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

    #[test]
    fn daily_brownouts_grow_and_bad_windows_are_named() {
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let effective: DateTime<Utc> = "2026-12-31T09:00:00Z".parse().unwrap();
        let daily = DailyBrownouts {
            last_days: 14,
            at: chrono::NaiveTime::from_hms_opt(14, 0, 0).unwrap(),
            first_minutes: 10,
            last_minutes: 75,
        };
        let w = daily.windows(effective);
        assert_eq!(w.len(), 14);
        assert_eq!(
            w[0].start,
            "2026-12-17T14:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!((w[0].end - w[0].start).num_minutes(), 10);
        assert_eq!((w[13].end - w[13].start).num_minutes(), 75);
        assert!(
            w.windows(2)
                .all(|p| (p[1].end - p[1].start) >= (p[0].end - p[0].start))
        );
        let levers = Levers::default()
            .with_brownouts(w.clone(), now, effective)
            .unwrap();
        assert_eq!(levers.brownout_at(w[3].start), Some(w[3]));
        assert_eq!(
            levers.brownout_at(w[3].end),
            None,
            "the end is outside the window"
        );

        let overlap = vec![
            w[0],
            Brownout {
                start: w[0].start + Duration::minutes(5),
                end: w[0].end + Duration::minutes(5),
            },
        ];
        let e = Levers::default()
            .with_brownouts(overlap, now, effective)
            .unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let late = vec![Brownout {
            start: effective,
            end: effective + Duration::minutes(10),
        }];
        assert!(
            Levers::default()
                .with_brownouts(late, now, effective)
                .unwrap_err()
                .to_string()
                .contains("outside the notice period")
        );
        let long = vec![Brownout {
            start: now,
            end: now + Duration::days(2),
        }];
        assert!(
            Levers::default()
                .with_brownouts(long, now, effective)
                .is_err()
        );
    }
}
