//! When a failed delivery is tried again: a fixed schedule over about three days, as
//! Standard Webhooks suggests, spread by jitter so that the notices of one retirement,
//! failing together, do not all come back at the same second.

use std::time::Duration;

/// The waits after each failed attempt; the attempt after the last one is the last.
const SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(24 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The most a receiver's `Retry-After` may push the next attempt back.
const MAX_ASKED: Duration = Duration::from_secs(24 * 3600);

/// How much jitter moves a wait: up to this fraction either way.
const JITTER: f64 = 0.2;

/// Attempts a notice gets before it is dead-lettered: the first, then one per wait.
pub const MAX_ATTEMPTS: u32 = SCHEDULE.len() as u32 + 1;

/// The wait before the next attempt, after `attempts` attempts have failed; `None` when
/// that was the last, and the notice is dead-lettered. `asked` is the receiver's
/// `Retry-After`, which is honoured up to a day; `unit` is a random number in [0, 1)
/// that picks the jitter (the caller owns the randomness, so tests can fix it).
pub fn next_wait(attempts: u32, asked: Option<Duration>, unit: f64) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = *SCHEDULE.get(index)?;
    let factor = 1.0 + JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    let jittered = base.mul_f64(factor);
    Some(match asked {
        Some(asked) => jittered.max(asked.min(MAX_ASKED)),
        None => jittered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spans_about_three_days_then_dead_letters() {
        let total: Duration = (1..MAX_ATTEMPTS)
            .map(|n| next_wait(n, None, 0.5).unwrap())
            .sum();
        let days = total.as_secs_f64() / 86_400.0;
        assert!((3.0..3.3).contains(&days), "{days}");
        assert_eq!(next_wait(1, None, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(next_wait(MAX_ATTEMPTS, None, 0.5), None);
        assert_eq!(next_wait(0, None, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_a_fifth_and_retry_after_is_honoured_up_to_a_day() {
        let base = Duration::from_secs(30 * 60);
        let low = next_wait(3, None, 0.0).unwrap();
        let high = next_wait(3, None, 0.999_999).unwrap();
        assert_eq!(low, base.mul_f64(0.8));
        assert!(
            high > base.mul_f64(1.19) && high <= base.mul_f64(1.2),
            "{high:?}"
        );
        // A receiver asking for longer gets it; one asking for less gets the schedule.
        let asked = Duration::from_secs(3 * 3600);
        assert_eq!(next_wait(3, Some(asked), 0.5), Some(asked));
        assert_eq!(next_wait(3, Some(Duration::from_secs(1)), 0.5), Some(base));
        assert_eq!(
            next_wait(3, Some(Duration::from_secs(30 * 86_400)), 0.5),
            Some(MAX_ASKED)
        );
    }
}
