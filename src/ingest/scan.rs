//! Gateway access logs in JSON Lines, read for evidence of who uses which model version.
//!
//! Each line is one JSON object. Two of its top-level fields matter: the one naming the
//! caller (`caller_field`) and the one holding the request path (`path_field`); a
//! pattern with the named groups `model` and `version` pulls the model out of the path.
//! Everything else on the line is skipped without being built, which is what lets a scan
//! keep up with a busy gateway. Lines are tallied per (caller, model, version), so a
//! scan writes one observation per distinct use rather than one per line.

use regex::bytes::Regex;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;

/// How to read one source's lines.
#[derive(Debug, Clone)]
pub struct LineFormat {
    pub caller_field: String,
    pub path_field: String,
    pub pattern: Regex,
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
        let names: Vec<&str> = pattern.capture_names().flatten().collect();
        if !names.contains(&"model") || !names.contains(&"version") {
            return Err(FormatError::Groups);
        }
        Ok(Self {
            caller_field: caller_field.to_owned(),
            path_field: path_field.to_owned(),
            pattern,
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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Keyed `caller \0 model \0 version`, so a repeated use is found without allocating.
    uses: HashMap<String, u64>,
    key: String,
    pub lines: u64,
    pub skipped: HashMap<Skip, u64>,
}

impl Tally {
    pub fn matched(&self) -> u64 {
        self.uses.values().sum()
    }

    /// Each distinct (caller, model, version) and how many lines showed it.
    pub fn uses(&self) -> impl Iterator<Item = ((&str, &str, &str), u64)> {
        self.uses.iter().filter_map(|(k, n)| {
            let mut parts = k.splitn(3, '\0');
            Some(((parts.next()?, parts.next()?, parts.next()?), *n))
        })
    }

    pub fn count(&self, caller: &str, model: &str, version: &str) -> u64 {
        self.uses
            .get(&format!("{caller}\0{model}\0{version}"))
            .copied()
            .unwrap_or(0)
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Tallies every complete line in `buf` (each ending in `\n`).
    pub fn add_lines(&mut self, format: &LineFormat, buf: &[u8]) {
        for line in buf.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.add_line(format, line);
        }
    }

    pub fn add_line(&mut self, format: &LineFormat, line: &[u8]) {
        self.lines += 1;
        match read_line(format, line) {
            Ok((caller, model, version)) => {
                if caller.contains('\0') {
                    *self.skipped.entry(Skip::MissingField).or_default() += 1;
                    return;
                }
                self.key.clear();
                self.key.push_str(&caller);
                self.key.push('\0');
                self.key.push_str(model);
                self.key.push('\0');
                self.key.push_str(version);
                if let Some(n) = self.uses.get_mut(self.key.as_str()) {
                    *n += 1;
                } else {
                    self.uses.insert(self.key.clone(), 1);
                }
            }
            Err(skip) => *self.skipped.entry(skip).or_default() += 1,
        }
    }
}

/// The caller, model and version of one line.
pub fn read_line<'a>(
    format: &LineFormat,
    line: &'a [u8],
) -> Result<(Cow<'a, str>, &'a str, &'a str), Skip> {
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
    let path: &'a [u8] = match path {
        Cow::Borrowed(p) => p.as_bytes(),
        Cow::Owned(_) => return Err(Skip::OtherPath),
    };
    let caps = format.pattern.captures(path).ok_or(Skip::OtherPath)?;
    let model = caps
        .name("model")
        .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
        .ok_or(Skip::OtherPath)?;
    let version = caps
        .name("version")
        .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
        .ok_or(Skip::OtherPath)?;
    Ok((caller, model, version))
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
