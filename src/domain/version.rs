//! Strict semantic versions: `MAJOR.MINOR.PATCH`, nothing more (AISVS 3.1.4).
//!
//! Pre-release and build suffixes are refused rather than ignored: a registry that
//! accepted `1.2.3-rc1` would have to define how it orders against `1.2.3`, and a
//! model version that reaches production must be a plain release. When to bump each
//! component is documented in README "Versioning".

use super::ParseError;
use std::fmt;

/// Each component is bounded so that it fits the database's signed 32-bit integer columns.
pub const MAX_COMPONENT: u32 = i32::MAX as u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses a strict `MAJOR.MINOR.PATCH` release.
    ///
    /// ```
    /// use sunset::domain::Version;
    ///
    /// let v = Version::parse("1.10.0").unwrap();
    /// assert!(v > Version::parse("1.9.7").unwrap());
    /// assert!(Version::parse("1.2.3-rc1").unwrap_err().message.contains("pre-release"));
    /// assert!(Version::parse("01.2.3").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        const FIELD: &str = "version";
        let expected = "expected MAJOR.MINOR.PATCH with non-negative integers, e.g. 1.4.0";
        if raw.len() > 32 {
            return Err(ParseError::new(FIELD, format!("is too long; {expected}")));
        }
        if raw.contains(['-', '+']) {
            return Err(ParseError::new(
                FIELD,
                format!(
                    "{raw:?} has a pre-release or build suffix, which is not accepted; {expected}"
                ),
            ));
        }
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() != 3 {
            return Err(ParseError::new(
                FIELD,
                format!("{raw:?} is not a version; {expected}"),
            ));
        }
        let mut numbers = [0u32; 3];
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::new(
                    FIELD,
                    format!("{raw:?} is not a version; {expected}"),
                ));
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(ParseError::new(
                    FIELD,
                    format!("{raw:?} has a leading zero in {part:?}; {expected}"),
                ));
            }
            *slot = part
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_COMPONENT)
                .ok_or_else(|| {
                    ParseError::new(
                        FIELD,
                        format!("{raw:?}: component {part} is larger than {MAX_COMPONENT}"),
                    )
                })?;
        }
        Ok(Self::new(numbers[0], numbers[1], numbers[2]))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// As its text, `1.2.3`, in audit records and answers.
impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Version {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_releases_parse_and_order_numerically() {
        let a = Version::parse("1.10.0").unwrap();
        let b = Version::parse("1.9.7").unwrap();
        assert!(a > b);
        assert_eq!(a.to_string(), "1.10.0");
    }

    #[test]
    fn malformed_versions_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "01.2.3",
            "1.2.3-rc1",
            "1.2.3+b",
            "1..3",
            " 1.2.3",
            "1.2.x",
            "4294967296.0.0",
        ] {
            let err = Version::parse(bad).expect_err(bad);
            assert_eq!(err.field, "version");
        }
        assert!(
            Version::parse("1.2.3-rc1")
                .unwrap_err()
                .message
                .contains("pre-release")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_and_round_trip(s in ".*") {
            if let Ok(v) = Version::parse(&s) {
                prop_assert_eq!(v.to_string(), s);
            }
        }

        #[test]
        fn printed_versions_parse_back(a in 0..=MAX_COMPONENT, b in 0..=MAX_COMPONENT, c in 0..=MAX_COMPONENT) {
            let v = Version::new(a, b, c);
            prop_assert_eq!(Version::parse(&v.to_string()), Ok(v));
        }
    }
}
