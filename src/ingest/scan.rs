//! Gateway access logs in JSON Lines, read for evidence of who uses which model version.
//!
//! Each line is one JSON object. Two of its top-level fields matter: the one naming the
//! caller (`caller_field`) and the one holding the request path (`path_field`); a
//! pattern with the named groups `model` and `version` pulls the model out of the path.
//! Everything else on the line is skipped without being built, which is what lets a scan
//! keep up with a busy gateway. Lines are tallied per (caller, model, version), so a
//! scan writes one observation per distinct use rather than one per line.

use hashbrown::HashTable;
use memchr::memmem;
use regex::bytes::{CaptureLocations, Regex};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

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
        let key = |field: &str| {
            let quoted = serde_json::to_string(field).unwrap_or_default();
            memmem::Finder::new(format!("{quoted}:").as_bytes()).into_owned()
        };
        Ok(Self {
            caller_key: key(caller_field),
            path_key: key(path_field),
            caller_field: caller_field.to_owned(),
            path_field: path_field.to_owned(),
            pattern,
            model_group,
            version_group,
        })
    }
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
}

#[derive(Debug, Clone, Copy)]
struct Use {
    start: usize,
    len: usize,
    count: u64,
}

impl Tally {
    pub fn matched(&self) -> u64 {
        self.table.iter().map(|u| u.count).sum()
    }

    /// Each distinct (caller, model, version) and how many lines showed it.
    pub fn uses(&self) -> impl Iterator<Item = ((&str, &str, &str), u64)> {
        self.table.iter().filter_map(|u| {
            // Every key was pushed from three `&str`s, so it is UTF-8.
            let key = std::str::from_utf8(&self.keys[u.start..u.start + u.len]).ok()?;
            let mut parts = key.splitn(3, '\0');
            Some(((parts.next()?, parts.next()?, parts.next()?), u.count))
        })
    }

    pub fn count(&self, caller: &str, model: &str, version: &str) -> u64 {
        let key = format!("{caller}\0{model}\0{version}");
        let hash = self.hasher.hash_one(key.as_bytes());
        self.table
            .find(hash, |u| {
                &self.keys[u.start..u.start + u.len] == key.as_bytes()
            })
            .map_or(0, |u| u.count)
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
                self.count_key();
            }
            Err(skip) => *self.skipped.entry(skip).or_default() += 1,
        }
    }

    /// Counts the use in `self.key`.
    fn count_key(&mut self) {
        let Self {
            keys,
            table,
            hasher,
            key,
            ..
        } = self;
        let hash = hasher.hash_one(key.as_slice());
        let stored = |u: &Use| &keys[u.start..u.start + u.len];
        if let Some(u) = table.find_mut(hash, |u| stored(u) == key.as_slice()) {
            u.count += 1;
            return;
        }
        let new = Use {
            start: keys.len(),
            len: key.len(),
            count: 1,
        };
        keys.extend_from_slice(key);
        table.insert_unique(hash, new, |u| {
            hasher.hash_one(&keys[u.start..u.start + u.len])
        });
    }
}

/// Bytes read and committed at a time: bounds memory and the work a crash repeats.
pub const CHUNK: usize = 8 * 1024 * 1024;
/// A "line" longer than this is not one; see [`read_chunk`].
const MAX_LINE: usize = 64 * 1024 * 1024;

pub fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Reads up to [`CHUNK`] bytes from `offset` and tallies the complete lines in them;
/// returns the tally and how many bytes those lines took. A line longer than a chunk is
/// read whole.
pub fn read_chunk(path: &Path, offset: u64, format: &LineFormat) -> std::io::Result<(Tally, u64)> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; CHUNK];
    let mut filled = read_up_to(&mut file, &mut buf)?;
    let mut end = memchr::memrchr(b'\n', &buf[..filled]);
    while end.is_none() && filled == buf.len() && buf.len() < MAX_LINE {
        buf.resize(buf.len() * 2, 0);
        filled += read_up_to(&mut file, &mut buf[filled..])?;
        end = memchr::memrchr(b'\n', &buf[..filled]);
    }
    let mut tally = Tally::default();
    let Some(end) = end else {
        if filled >= MAX_LINE {
            // Not a log line anyone wrote on purpose: counted as one malformed line and
            // passed over, so the file can be read on.
            tally.add_line(format, b"");
            return Ok((tally, filled as u64));
        }
        return Ok((tally, 0));
    };
    tally.add_lines(format, &buf[..end]);
    Ok((tally, end as u64 + 1))
}

/// The caller, model and version of one line.
pub fn read_line<'a>(
    format: &LineFormat,
    line: &'a [u8],
) -> Result<(Cow<'a, str>, &'a str, &'a str), Skip> {
    read_line_with(format, line, &mut format.pattern.capture_locations())
}

fn read_line_with<'a>(
    format: &LineFormat,
    line: &'a [u8],
    locations: &mut CaptureLocations,
) -> Result<(Cow<'a, str>, &'a str, &'a str), Skip> {
    let (caller, path) = match fast_fields(format, line) {
        Some((caller, path)) => (Cow::Borrowed(caller), path),
        None => slow_fields(format, line)?,
    };
    format
        .pattern
        .captures_read(locations, path)
        .ok_or(Skip::OtherPath)?;
    let group = |i: usize| {
        locations
            .get(i)
            .and_then(|(a, b)| std::str::from_utf8(&path[a..b]).ok())
            .ok_or(Skip::OtherPath)
    };
    Ok((
        caller,
        group(format.model_group)?,
        group(format.version_group)?,
    ))
}

/// The fast path for the usual line: both fields present at the top level, as
/// strings without escapes. Finds them by their quoted key and checks they sit at depth
/// one outside any string; anything else falls back to a full parse. It does not check
/// that the rest of the line is valid JSON: a log line is read for its two fields.
fn fast_fields<'a>(format: &LineFormat, line: &'a [u8]) -> Option<(&'a str, &'a [u8])> {
    let line = line.trim_ascii();
    if line.first() != Some(&b'{') || line.last() != Some(&b'}') {
        return None;
    }
    let caller = top_level_string(line, &format.caller_key)?;
    let path = top_level_string(line, &format.path_key)?;
    Some((std::str::from_utf8(caller).ok()?, path))
}

fn top_level_string<'a>(line: &'a [u8], key: &memmem::Finder<'_>) -> Option<&'a [u8]> {
    // The first occurrence must be the top-level key; a nested one first sends the line
    // to the full parse. (A later duplicate at the top level is not valid JSON to begin with.)
    let at = key.find(line)?;
    let after = at + key.needle().len();
    if !at_top_level(&line[..at]) {
        return None;
    }
    let rest = line[after..].trim_ascii_start();
    let value = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', value)?;
    let value = &value[..end];
    (!value.contains(&b'\\')).then_some(value)
}

/// Whether the end of `prefix` (everything before a key) is inside the outermost object
/// and not inside a string.
fn at_top_level(prefix: &[u8]) -> bool {
    let mut depth = 0i32;
    let mut i = 0;
    while i < prefix.len() {
        match prefix[i] {
            b'"' => {
                // Jump through the string to its closing quote, stepping over escapes.
                let mut j = i + 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &prefix[j.min(prefix.len())..]) {
                        None => return false,
                        Some(k) if prefix[j + k] == b'\\' => j += k + 2,
                        Some(k) => {
                            i = j + k + 1;
                            break;
                        }
                    }
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    depth == 1
}

/// The full parse, for lines the fast path declines.
fn slow_fields<'a>(format: &LineFormat, line: &'a [u8]) -> Result<(Cow<'a, str>, &'a [u8]), Skip> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let fields = Fields {
        caller_field: &format.caller_field,
        path_field: &format.path_field,
    }
    .deserialize(&mut de)
    .map_err(|_| Skip::Malformed)?;
    let (Some(caller), Some(path)) = fields else {
        return Err(Skip::MissingField);
    };
    // A path with escapes is rare; borrowing keeps the common case free of copies.
    match path {
        Cow::Borrowed(p) => Ok((caller, p.as_bytes())),
        Cow::Owned(_) => Err(Skip::OtherPath),
    }
}

/// Finds two top-level string fields and skips the rest.
struct Fields<'f> {
    caller_field: &'f str,
    path_field: &'f str,
}

type Found<'a> = (Option<Cow<'a, str>>, Option<Cow<'a, str>>);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Found<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut caller = None;
        let mut path = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.caller_field {
                caller = map.next_value::<MaybeStr<'de>>()?.0;
            } else if key == self.path_field {
                path = map.next_value::<MaybeStr<'de>>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((caller, path))
    }
}

/// A string, or `None` for any other JSON value.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> serde::Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> LineFormat {
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
}
