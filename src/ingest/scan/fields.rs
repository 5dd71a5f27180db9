//! Reading the few fields a scan needs from one JSON line, without building the rest:
//! a fast path that finds each field by its quoted key at the top level, and a full
//! parse that skips every other value for the lines the fast path declines.

use super::{LineFormat, Skip};
use memchr::memmem;
use regex::bytes::CaptureLocations;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;

/// The caller, model and version of one line.
pub fn read_line<'a>(
    format: &LineFormat,
    line: &'a [u8],
) -> Result<(Cow<'a, str>, &'a str, &'a str), Skip> {
    read_line_with(format, line, &mut format.pattern.capture_locations())
}

pub(super) fn read_line_with<'a>(
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
    match top_level_value(line, key)? {
        Raw::Text(value) => Some(value),
        Raw::Number(_) => None,
    }
}

/// A top-level value as it stands on the line: a string without escapes, or a number.
enum Raw<'a> {
    Text(&'a [u8]),
    Number(&'a [u8]),
}

fn top_level_value<'a>(line: &'a [u8], key: &memmem::Finder<'_>) -> Option<Raw<'a>> {
    // The first occurrence must be the top-level key; a nested one first sends the line
    // to the full parse. (A later duplicate at the top level is not valid JSON to begin with.)
    let at = key.find(line)?;
    let after = at + key.needle().len();
    if !at_top_level(&line[..at]) {
        return None;
    }
    let rest = line[after..].trim_ascii_start();
    if let Some(value) = rest.strip_prefix(b"\"") {
        let end = memchr::memchr(b'"', value)?;
        let value = &value[..end];
        return (!value.contains(&b'\\')).then_some(Raw::Text(value));
    }
    let end = rest
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .unwrap_or(rest.len());
    (end > 0).then(|| Raw::Number(&rest[..end]))
}

/// The time of one line in Unix milliseconds, from the format's time field.
pub(super) fn line_time(format: &LineFormat, line: &[u8]) -> Option<i64> {
    let (field, key) = format.time.as_ref()?;
    let trimmed = line.trim_ascii();
    if trimmed.first() == Some(&b'{')
        && let Some(raw) = top_level_value(trimmed, key)
    {
        return match raw {
            Raw::Text(text) => rfc3339_millis(std::str::from_utf8(text).ok()?),
            Raw::Number(n) => unix_millis(std::str::from_utf8(n).ok()?.parse().ok()?),
        };
    }
    // Escapes, or the key nested first: the full parse, which is rare enough to build.
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).ok()?;
    match object.remove(field)? {
        serde_json::Value::String(text) => rfc3339_millis(&text),
        serde_json::Value::Number(n) => unix_millis(n.as_f64()?),
        _ => None,
    }
}

fn rfc3339_millis(text: &str) -> Option<i64> {
    // The usual log time is read by hand: chrono's general parser took a third of a
    // scan's time with a time field. Anything unusual goes to chrono.
    common_rfc3339_millis(text.as_bytes()).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

/// The usual RFC 3339 form in Unix milliseconds (see [`crate::rfc3339`]).
fn common_rfc3339_millis(b: &[u8]) -> Option<i64> {
    crate::rfc3339::unix_nanos(b).map(|n| n.div_euclid(1_000_000))
}

/// Unix seconds, or milliseconds when the number is too large to be seconds.
fn unix_millis(n: f64) -> Option<i64> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let millis = if n > 1e11 { n } else { n * 1000.0 };
    // Beyond chrono's range is not a time anyone logged.
    (millis < 8.0e15).then_some(millis as i64)
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

    #[test]
    fn the_common_time_form_reads_as_chrono_reads_it() {
        for text in [
            "2026-11-22T10:00:00Z",
            "2026-11-22T10:00:00.123Z",
            "2026-11-22T10:00:00.5Z",
            "2026-11-22T10:00:00.123456789Z",
            "2026-11-22T10:00:00+01:00",
            "2026-11-22t10:00:00.999-05:30",
            "2024-02-29T23:59:59Z",
            "2000-03-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.001Z",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis();
            assert_eq!(
                common_rfc3339_millis(text.as_bytes()),
                Some(chrono),
                "{text}"
            );
        }
        // Other forms are left to chrono, which reads or refuses them.
        for text in [
            "2026-11-22 10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-22T10:00:00",
            "yesterday",
        ] {
            assert_eq!(common_rfc3339_millis(text.as_bytes()), None, "{text}");
        }
        assert_eq!(
            rfc3339_millis("2026-11-22 10:00:00Z"),
            chrono::DateTime::parse_from_rfc3339("2026-11-22 10:00:00Z")
                .ok()
                .map(|t| t.timestamp_millis())
        );
    }
}
