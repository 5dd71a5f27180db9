//! Reading the usual form of an RFC 3339 instant by hand, where many are read: a scan's
//! log lines (chrono's general parser took a third of a scan's time with a time field) and
//! the two times of every edge a graph load reads. Anything unusual is left to chrono.
//! Imports nothing of the crate.

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` in nanoseconds since the Unix epoch
/// (a fraction's digits past the ninth ignored, as chrono does); `None` for anything
/// else, a field out of range, or an instant an `i64` of nanoseconds cannot hold (outside
/// the years 1677 to 2262).
pub fn unix_nanos(b: &[u8]) -> Option<i64> {
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let punctuated = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !punctuated {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0;
    if b[at] == b'.' {
        let start = at + 1;
        at = start;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let fraction = &b[start..at];
        if fraction.is_empty() {
            return None;
        }
        nanos = fraction
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    }
    let offset_minutes = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_form_reads_as_chrono_reads_it_and_the_rest_is_left_to_chrono() {
        for text in [
            "2026-12-07T21:49:19.692341946+00:00",
            "2026-12-07t21:49:19z",
            "2026-12-07T23:49:19.25+02:00",
            "2024-02-29T00:00:00.1234567891Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
        ] {
            let by_chrono = chrono::DateTime::parse_from_rfc3339(text).unwrap();
            assert_eq!(
                unix_nanos(text.as_bytes()),
                by_chrono.timestamp_nanos_opt(),
                "{text}"
            );
        }
        for other in [
            "2026-12-07 21:49:19Z",
            "2025-02-29T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "2026-12-07T21:49:19.Z",
            "9999-12-31T23:59:59Z",
            "yesterday",
        ] {
            assert_eq!(unix_nanos(other.as_bytes()), None, "{other}");
        }
    }
}
