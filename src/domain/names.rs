//! Names of models, teams and API tokens.
//!
//! Rules (documented in README "Naming rules"): a model name is 1 to 100 characters of
//! lowercase ASCII letters, digits, `-`, `_` and `.`; it starts and ends with a letter or
//! digit and holds no `..`. Team and token names follow the same alphabet without `.`,
//! 1 to 64 characters. Lowercase only, so that `Llama` and `llama` can never be two
//! models; no `/`, so that a name is always one URL path segment.

use super::ParseError;
use std::fmt;

pub(super) fn parse_slug(
    field: &'static str,
    raw: &str,
    max_len: usize,
    allow_dot: bool,
) -> Result<String, ParseError> {
    let accepted = if allow_dot {
        "lowercase letters, digits, '-', '_' and '.'"
    } else {
        "lowercase letters, digits, '-' and '_'"
    };
    if raw.is_empty() {
        return Err(ParseError::new(field, "is empty"));
    }
    if raw.len() > max_len {
        return Err(ParseError::new(
            field,
            format!(
                "is {} bytes long; at most {max_len} are accepted",
                raw.len()
            ),
        ));
    }
    if let Some(c) = raw.chars().find(|c| {
        !(c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || *c == '-'
            || *c == '_'
            || (allow_dot && *c == '.'))
    }) {
        return Err(ParseError::new(
            field,
            format!("{raw:?} contains {c:?}; only {accepted} are accepted"),
        ));
    }
    let bytes = raw.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return Err(ParseError::new(
            field,
            format!("{raw:?} must start and end with a lowercase letter or digit"),
        ));
    }
    if raw.contains("..") {
        return Err(ParseError::new(field, format!("{raw:?} contains '..'")));
    }
    Ok(raw.to_owned())
}

macro_rules! slug_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal, $dot:literal) => {
        $(#[$doc])*
        ///
        /// Shared rather than owned: the inventory holds a name for every model and
        /// version in memory, and a version's model name is its model's, not a copy.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                parse_slug($field, raw, $max, $dot).map(|s| Self(s.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Hashes and compares as its text does, so maps keyed by names are searched by
        /// text.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

slug_type!(
    /// The unique name of a model, e.g. `fraud-scorer` or `llama-3.1-8b-instruct`.
    ///
    /// ```
    /// use sunset::domain::ModelName;
    ///
    /// assert_eq!(ModelName::parse("llama-3.1-8b").unwrap().as_str(), "llama-3.1-8b");
    /// let err = ModelName::parse("Llama/3").unwrap_err();
    /// assert_eq!(err.field, "model name");
    /// ```
    ModelName, "model name", 100, true
);
slug_type!(
    /// The team that owns models and consumers, e.g. `payments-ml`.
    TeamName, "team name", 64, false
);
slug_type!(
    /// The unique name of an authorised signer, e.g. `release-bot` or `jane-doe`.
    SignerName, "signer name", 64, false
);
slug_type!(
    /// The unique name of an API token, e.g. `ci-deployer`; it identifies the actor in audit records.
    TokenName, "token name", 64, false
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn model_names_with_dots_digits_and_dashes_are_accepted() {
        for ok in ["a", "llama-3.1-8b-instruct", "fraud_scorer", "x9"] {
            assert_eq!(
                ModelName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn model_names_that_could_escape_a_path_or_collide_are_refused() {
        for bad in [
            "", "Llama", "a/b", "..", "a..b", "-a", "a-", ".a", "a b", "ä",
        ] {
            let err = ModelName::parse(bad).expect_err(bad);
            assert_eq!(err.field, "model name");
        }
        assert!(ModelName::parse(&"a".repeat(101)).is_err());
        assert!(ModelName::parse(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn team_names_refuse_dots() {
        assert!(TeamName::parse("payments.ml").is_err());
        assert!(TeamName::parse("payments-ml").is_ok());
    }

    proptest! {
        #[test]
        fn any_string_either_parses_to_itself_or_names_the_field(s in ".*") {
            match ModelName::parse(&s) {
                Ok(name) => {
                    prop_assert_eq!(name.as_str(), s.as_str());
                    prop_assert!(!s.contains('/') && !s.contains(".."));
                }
                Err(e) => prop_assert_eq!(e.field, "model name"),
            }
            let _ = TeamName::parse(&s);
            let _ = TokenName::parse(&s);
        }
    }
}
