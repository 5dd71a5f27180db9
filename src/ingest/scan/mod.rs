//! Gateway access logs in JSON Lines, read for evidence of who uses which model version.
//!
//! Each line is one JSON object. Two of its top-level fields matter: the one naming the
//! caller (`caller_field`) and the one holding the request path (`path_field`); a
//! pattern with the named groups `model` and `version` pulls the model out of the path.
//! Everything else on the line is skipped without being built, which is what lets a scan
//! keep up with a busy gateway. Lines are tallied per (caller, model, version), so a
//! scan writes one observation per distinct use rather than one per line.
//!
//! With a `time_field`, each use also keeps the earliest and latest time its lines carry,
//! so evidence says when the traffic happened, not when the log was read.

mod fields;

pub use fields::read_line;
use fields::{line_time, read_line_with};
use hashbrown::HashTable;
use memchr::memmem;
use regex::bytes::{CaptureLocations, Regex};
use std::collections::HashMap;
use std::hash::BuildHasher;

/// How to read one source's lines.
#[derive(Debug, Clone)]
pub struct LineFormat {
    pub caller_field: String,
    pub path_field: String,
    pub pattern: Regex,
    model_group: usize,
    version_group: usize,
    /// `"<caller_field>":` and `"<path_field>":`, for the fast path.
    caller_key: memmem::Finder<'static>,
    path_key: memmem::Finder<'static>,
    /// The field holding each line's time, and its quoted key.
    time: Option<(String, memmem::Finder<'static>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("path_pattern is not a valid regular expression: {0}")]
    Pattern(String),
    #[error("path_pattern must have the named groups (?P<model>…) and (?P<version>…)")]
    Groups,
}

impl LineFormat {
    pub fn new(caller_field: &str, path_field: &str, pattern: &str) -> Result<Self, FormatError> {
        let pattern = Regex::new(pattern).map_err(|e| FormatError::Pattern(e.to_string()))?;
        let group = |name: &str| {
            pattern
                .capture_names()
                .position(|n| n == Some(name))
                .ok_or(FormatError::Groups)
        };
        let (model_group, version_group) = (group("model")?, group("version")?);
        Ok(Self {
            caller_key: key(caller_field),
            path_key: key(path_field),
            caller_field: caller_field.to_owned(),
            path_field: path_field.to_owned(),
            pattern,
            model_group,
            version_group,
            time: None,
        })
    }

    /// Reads each line's time from `field`: RFC 3339 text, or a number of Unix seconds
    /// (milliseconds when above 10^11, which as seconds would be the year 5138).
    pub fn with_time_field(mut self, field: &str) -> Self {
        self.time = Some((field.to_owned(), key(field)));
        self
    }
}

/// `"<field>":`, the way the key appears on a line.
fn key(field: &str) -> memmem::Finder<'static> {
    let quoted = serde_json::to_string(field).unwrap_or_default();
    memmem::Finder::new(format!("{quoted}:").as_bytes()).into_owned()
}

/// Why a line did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not a JSON object.
    Malformed,
    /// No caller or path field, or not strings.
    MissingField,
    /// The path is not a model request.
    OtherPath,
}

/// Counts per (caller, model, version) and of lines skipped, for one stretch of a log.
///
/// A busy log holds hundreds of thousands of distinct uses. Their keys
/// (`caller \0 model \0 version`) live end to end in one buffer and the table holds only
/// where each starts, so a new use costs no allocation of its own and the table stays small.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    keys: Vec<u8>,
    table: HashTable<Use>,
    hasher: foldhash::fast::FixedState,
    key: Vec<u8>,
    locations: Option<CaptureLocations>,
    pub lines: u64,
    pub skipped: HashMap<Skip, u64>,
    /// Matched lines whose time field was missing or unreadable (with a `time_field`).
    pub untimed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Use {
    start: usize,
    len: usize,
    count: u64,
    /// Earliest and latest line time (Unix milliseconds); `MAX`/`MIN` while none.
    first: i64,
    last: i64,
    /// Whether a line of this use had no readable time.
    untimed: bool,
}

/// One distinct use in a [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    pub caller: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    pub count: u64,
    /// The earliest and latest time its lines carried (Unix milliseconds), if any did.
    pub span: Option<(i64, i64)>,
    /// Whether some of its lines carried no readable time.
    pub untimed: bool,
}

impl Tally {
    pub fn matched(&self) -> u64 {
        self.table.iter().map(|u| u.count).sum()
    }

    /// Each distinct (caller, model, version), how many lines showed it and when.
    pub fn uses(&self) -> impl Iterator<Item = Seen<'_>> {
        self.table.iter().filter_map(|u| {
            // Every key was pushed from three `&str`s, so it is UTF-8.
            let key = std::str::from_utf8(&self.keys[u.start..u.start + u.len]).ok()?;
            let mut parts = key.splitn(3, '\0');
            Some(Seen {
                caller: parts.next()?,
                model: parts.next()?,
                version: parts.next()?,
                count: u.count,
                span: (u.first <= u.last).then_some((u.first, u.last)),
                untimed: u.untimed,
            })
        })
    }

    pub fn count(&self, caller: &str, model: &str, version: &str) -> u64 {
        self.find(caller, model, version).map_or(0, |u| u.count)
    }

    /// When the lines of one use happened, if they said.
    pub fn span(&self, caller: &str, model: &str, version: &str) -> Option<(i64, i64)> {
        self.find(caller, model, version)
            .filter(|u| u.first <= u.last)
            .map(|u| (u.first, u.last))
    }

    fn find(&self, caller: &str, model: &str, version: &str) -> Option<&Use> {
        let key = format!("{caller}\0{model}\0{version}");
        let hash = self.hasher.hash_one(key.as_bytes());
        self.table.find(hash, |u| {
            &self.keys[u.start..u.start + u.len] == key.as_bytes()
        })
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Tallies every complete line in `buf` (each ending in `\n`).
    pub fn add_lines(&mut self, format: &LineFormat, buf: &[u8]) {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', buf).chain(std::iter::once(buf.len())) {
            let line = &buf[start..end.min(buf.len())];
            start = end + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.add_line(format, line);
        }
    }

    pub fn add_line(&mut self, format: &LineFormat, line: &[u8]) {
        self.lines += 1;
        let locations = self
            .locations
            .get_or_insert_with(|| format.pattern.capture_locations());
        match read_line_with(format, line, locations) {
            Ok((caller, model, version)) => {
                if caller.contains('\0') {
                    *self.skipped.entry(Skip::MissingField).or_default() += 1;
                    return;
                }
                self.key.clear();
                self.key.extend_from_slice(caller.as_bytes());
                self.key.push(0);
                self.key.extend_from_slice(model.as_bytes());
                self.key.push(0);
                self.key.extend_from_slice(version.as_bytes());
                let at = match &format.time {
                    None => None,
                    Some(_) => {
                        let at = line_time(format, line);
                        self.untimed += u64::from(at.is_none());
                        Some(at)
                    }
                };
                self.count_key(at);
            }
            Err(skip) => *self.skipped.entry(skip).or_default() += 1,
        }
    }

    /// Counts the use in `self.key`; `at` is `Some` when the format reads times.
    fn count_key(&mut self, at: Option<Option<i64>>) {
        let Self {
            keys,
            table,
            hasher,
            key,
            ..
        } = self;
        let hash = hasher.hash_one(key.as_slice());
        let stored = |u: &Use| &keys[u.start..u.start + u.len];
        let u = match table.find_mut(hash, |u| stored(u) == key.as_slice()) {
            Some(u) => u,
            None => {
                let new = Use {
                    start: keys.len(),
                    len: key.len(),
                    count: 0,
                    first: i64::MAX,
                    last: i64::MIN,
                    untimed: false,
                };
                keys.extend_from_slice(key);
                table
                    .insert_unique(hash, new, |u| {
                        hasher.hash_one(&keys[u.start..u.start + u.len])
                    })
                    .into_mut()
            }
        };
        u.count += 1;
        match at {
            None => {}
            Some(Some(t)) => {
                u.first = u.first.min(t);
                u.last = u.last.max(t);
            }
            Some(None) => u.untimed = true,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The format the ingest tests read lines with.
    pub(crate) fn format() -> LineFormat {
        LineFormat::new(
            "client",
            "path",
            r"^/v1/models/(?P<model>[a-z0-9._-]+)/versions/(?P<version>[0-9.]+)/",
        )
        .unwrap()
    }

    #[test]
    fn the_two_fields_are_found_among_many_and_tallied() {
        let log = concat!(
            r#"{"ts":"2026-11-22T10:00:00Z","client":"checkout","path":"/v1/models/fraud/versions/2.1.0/predict","status":200,"headers":{"a":[1,2]}}"#,
            "\n",
            r#"{"client":"checkout","path":"/v1/models/fraud/versions/2.1.0/predict"}"#,
            "\n",
            r#"{"path":"/v1/models/fraud/versions/2.1.0/predict","client":"search"}"#,
            "\n",
            r#"{"client":"checkout","path":"/healthz"}"#,
            "\n",
            r#"{"client":42,"path":"/v1/models/fraud/versions/2.1.0/x"}"#,
            "\n",
            "not json\n",
            "\n",
        );
        let mut t = Tally::default();
        t.add_lines(&format(), log.as_bytes());
        assert_eq!(t.lines, 6);
        assert_eq!(t.count("checkout", "fraud", "2.1.0"), 2);
        assert_eq!(t.count("search", "fraud", "2.1.0"), 1);
        assert_eq!(t.uses().count(), 2);
        assert_eq!(t.skipped.get(&Skip::OtherPath), Some(&1));
        assert_eq!(t.skipped.get(&Skip::MissingField), Some(&1));
        assert_eq!(t.skipped.get(&Skip::Malformed), Some(&1));
        assert_eq!(t.matched() + t.skipped_total(), t.lines);
    }

    #[test]
    fn the_fast_path_declines_what_only_a_full_parse_reads_right() {
        let f = format();
        let path = r#""path":"/v1/models/fraud/versions/2.1.0/p""#;
        for (line, caller) in [
            // A nested key of the same name is not the caller.
            (
                format!(r#"{{"meta":{{"client":"inner"}},"client":"outer",{path}}}"#),
                Some("outer"),
            ),
            (format!(r#"{{"meta":{{"client":"inner"}},{path}}}"#), None),
            // The key's text inside a string value is not a key.
            (
                format!(r#"{{"note":"say \"client\":\"x\"","client":"real",{path}}}"#),
                Some("real"),
            ),
            // Escapes are decoded by the full parse.
            (format!(r#"{{"client":"a\u0062c",{path}}}"#), Some("abc")),
            (
                format!(r#"{{ "client" : "spaced" , {path} }}"#),
                Some("spaced"),
            ),
        ] {
            let got = read_line(&f, line.as_bytes())
                .ok()
                .map(|(c, _, _)| c.into_owned());
            assert_eq!(got.as_deref(), caller, "{line}");
        }
    }

    #[test]
    fn escaped_callers_are_read_and_patterns_need_both_groups() {
        let (caller, _, _) = read_line(
            &format(),
            br#"{"client":"check\u006fut","path":"/v1/models/m/versions/1.0.0/"}"#,
        )
        .unwrap();
        assert_eq!(caller, "checkout");
        assert!(matches!(
            LineFormat::new("c", "p", r"/v1/models/(?P<model>[^/]+)/"),
            Err(FormatError::Groups)
        ));
        assert!(matches!(
            LineFormat::new("c", "p", r"(unclosed"),
            Err(FormatError::Pattern(_))
        ));
    }

    #[test]
    fn each_use_keeps_the_span_of_its_lines_times_in_every_form() {
        let f = format().with_time_field("ts");
        let path = r#""path":"/v1/models/m/versions/1.0.0/p""#;
        let log = [
            format!(r#"{{"ts":"2026-11-01T10:00:00Z","client":"a",{path}}}"#),
            format!(r#"{{"client":"a",{path},"ts":"2026-11-03T10:00:00+01:00"}}"#),
            // Unix seconds with a fraction, milliseconds, and an escape for the full parse.
            format!(r#"{{"ts":1762000000.5,"client":"b",{path}}}"#),
            format!(r#"{{"ts":1762000001000,"client":"b",{path}}}"#),
            format!(r#"{{"x":"A","ts":"2026-11-02T00:00:00Z","client":"c",{path}}}"#),
            // No time, or one that is not a time: counted, and said to be untimed.
            format!(r#"{{"client":"d",{path}}}"#),
            format!(r#"{{"ts":"yesterday","client":"d",{path}}}"#),
        ]
        .join("\n");
        let mut t = Tally::default();
        t.add_lines(&f, log.as_bytes());
        let ms = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(
            t.span("a", "m", "1.0.0"),
            Some((ms("2026-11-01T10:00:00Z"), ms("2026-11-03T09:00:00Z")))
        );
        assert_eq!(
            t.span("b", "m", "1.0.0"),
            Some((1_762_000_000_500, 1_762_000_001_000))
        );
        assert_eq!(
            t.span("c", "m", "1.0.0"),
            Some((ms("2026-11-02T00:00:00Z"), ms("2026-11-02T00:00:00Z")))
        );
        assert_eq!(t.span("d", "m", "1.0.0"), None);
        assert_eq!((t.count("d", "m", "1.0.0"), t.untimed), (2, 2));
        let d = t.uses().find(|u| u.caller == "d").unwrap();
        assert!(d.untimed);
        // Without a time field nothing is read and nothing is untimed.
        let mut plain = Tally::default();
        plain.add_lines(&format(), log.as_bytes());
        assert_eq!((plain.matched(), plain.untimed), (7, 0));
        assert_eq!(plain.span("a", "m", "1.0.0"), None);
    }
}
