//! Upcoming retirements as an iCalendar feed (RFC 5545), for governance calendars: one
//! event per retirement at its effective time. An event's UID stays the same for the
//! life of the retirement and its SEQUENCE grows with each change, so a calendar that
//! polls the feed moves a postponed retirement rather than adding a second one.

use crate::domain::RetirementState;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// What the feed shows of one retirement.
#[derive(Debug, Clone)]
pub struct CalendarEntry {
    pub retirement_id: i64,
    pub model: String,
    /// The versions retired, as selected (`2.1.0`, `^2`, `*`).
    pub versions: String,
    pub state: RetirementState,
    pub effective_at: DateTime<Utc>,
    pub reason: String,
    pub replacement: Option<String>,
    /// Grows by one with every change of the retirement.
    pub sequence: u32,
    /// When the retirement last changed.
    pub changed_at: DateTime<Utc>,
    /// Brownout windows of its notice period, `(start, end)`, each an event of its own.
    pub brownouts: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The feed, with CRLF line ends and lines folded at 75 octets as RFC 5545 asks.
/// `host` makes the UIDs globally unique (`retirement-7@host`).
pub fn feed(entries: &[CalendarEntry], host: &str) -> String {
    let mut out = String::new();
    let mut line = |text: &str| fold_into(&mut out, text);
    line("BEGIN:VCALENDAR");
    line("VERSION:2.0");
    line("PRODID:-//sunset//model retirements//EN");
    line("CALSCALE:GREGORIAN");
    line("METHOD:PUBLISH");
    line("X-WR-CALNAME:Model retirements");
    for e in entries {
        line("BEGIN:VEVENT");
        line(&format!(
            "UID:retirement-{}@{}",
            e.retirement_id,
            escape(host)
        ));
        line(&format!("DTSTAMP:{}", stamp(e.changed_at)));
        line(&format!("DTSTART:{}", stamp(e.effective_at)));
        line(&format!("SEQUENCE:{}", e.sequence));
        line(&format!(
            "SUMMARY:{}",
            escape(&format!("Retirement of {} {}", e.model, e.versions))
        ));
        let mut description = format!("State: {}\nReason: {}", e.state, e.reason);
        if let Some(r) = &e.replacement {
            let _ = write!(description, "\nReplacement: {r}");
        }
        line(&format!("DESCRIPTION:{}", escape(&description)));
        line(&format!(
            "STATUS:{}",
            match e.state {
                RetirementState::Cancelled => "CANCELLED",
                RetirementState::NeedsDecision => "TENTATIVE",
                _ => "CONFIRMED",
            }
        ));
        line("END:VEVENT");
        for (n, (start, end)) in e.brownouts.iter().enumerate() {
            line("BEGIN:VEVENT");
            line(&format!(
                "UID:retirement-{}-brownout-{}@{}",
                e.retirement_id,
                n + 1,
                escape(host)
            ));
            line(&format!("DTSTAMP:{}", stamp(e.changed_at)));
            line(&format!("DTSTART:{}", stamp(*start)));
            line(&format!("DTEND:{}", stamp(*end)));
            line(&format!("SEQUENCE:{}", e.sequence));
            line(&format!(
                "SUMMARY:{}",
                escape(&format!("Brownout of {} {}", e.model, e.versions))
            ));
            line(&format!(
                "DESCRIPTION:{}",
                escape(
                    "Downloads by dependents that have not acknowledged the retirement answer 503 during this window."
                )
            ));
            line(&format!(
                "STATUS:{}",
                if e.state == RetirementState::Cancelled {
                    "CANCELLED"
                } else {
                    "CONFIRMED"
                }
            ));
            line("END:VEVENT");
        }
    }
    line("END:VCALENDAR");
    out
}

/// A UTC date-time in the form RFC 5545 calls "form #2".
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT values escape backslashes, semicolons, commas and line breaks (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `text` as one content line: folded so no line exceeds 75 octets, never inside
/// a UTF-8 sequence, each continuation starting with a space (§3.1).
fn fold_into(out: &mut String, text: &str) {
    const LIMIT: usize = 75;
    let mut room = LIMIT;
    let mut used = 0;
    for c in text.chars() {
        if used + c.len_utf8() > room {
            out.push_str("\r\n ");
            // The leading space counts towards the next line's 75.
            room = LIMIT - 1;
            used = 0;
        }
        out.push(c);
        used += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn entry(state: RetirementState, reason: &str) -> CalendarEntry {
        CalendarEntry {
            retirement_id: 7,
            model: "fraud-scorer".into(),
            versions: "^2".into(),
            state,
            effective_at: at("2027-03-01T09:30:00Z"),
            reason: reason.into(),
            replacement: Some("fraud-scorer 3.0.0".into()),
            sequence: 2,
            changed_at: at("2026-12-01T00:00:00Z"),
            brownouts: Vec::new(),
        }
    }

    /// Content lines with folding undone.
    fn unfolded(feed: &str) -> Vec<String> {
        feed.replace("\r\n ", "")
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_retirement_is_one_event_at_its_effective_time() {
        let text = feed(
            &[entry(RetirementState::Scheduled, "superseded")],
            "sunset.example",
        );
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "only CRLF line ends"
        );
        let lines = unfolded(&text);
        for want in [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "BEGIN:VEVENT",
            "UID:retirement-7@sunset.example",
            "DTSTAMP:20261201T000000Z",
            "DTSTART:20270301T093000Z",
            "SEQUENCE:2",
            "SUMMARY:Retirement of fraud-scorer ^2",
            "DESCRIPTION:State: scheduled\\nReason: superseded\\nReplacement: fraud-scorer 3.0.0",
            "STATUS:CONFIRMED",
            "END:VEVENT",
        ] {
            assert!(
                lines.iter().any(|l| l == want),
                "{want} missing from {lines:#?}"
            );
        }
        let cancelled = feed(&[entry(RetirementState::Cancelled, "x")], "h");
        assert!(unfolded(&cancelled).contains(&"STATUS:CANCELLED".to_owned()));
        let empty = feed(&[], "h");
        assert!(!empty.contains("VEVENT"));
    }

    #[test]
    fn text_is_escaped_and_long_lines_fold_without_splitting_characters() {
        let reason = "prompt injection; see CVE-2026-1, \\ and the report \u{2014} ".repeat(6)
            + "Überprüfung nötig";
        let text = feed(&[entry(RetirementState::Scheduled, &reason)], "h");
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
        }
        let description = unfolded(&text)
            .into_iter()
            .find(|l| l.starts_with("DESCRIPTION:"))
            .unwrap();
        assert!(
            description
                .contains("prompt injection\\; see CVE-2026-1\\, \\\\ and the report \u{2014}")
        );
        assert!(description.ends_with("Überprüfung nötig\\nReplacement: fraud-scorer 3.0.0"));
    }
}
