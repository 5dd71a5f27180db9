//! Provenance of a model version (AISVS 3.1.3): what it was trained on, how it was
//! validated and what it needs at run time. The authorizing identity and creation time
//! are not part of the input: they are taken from the authenticated actor and the clock.

use super::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const MAX_ENTRIES: usize = 256;
const MAX_LABEL: usize = 512;

/// A SHA-256 digest, stored as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Digest(String);

impl Sha256Digest {
    /// Accepts 64 hex digits in either case, optionally prefixed by `sha256:`.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let hex = raw.strip_prefix("sha256:").unwrap_or(raw);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::new(
                "sha256 digest",
                format!("{raw:?} is not a SHA-256 digest; 64 hex digits are expected"),
            ));
        }
        Ok(Self(hex.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataChecksum {
    /// Where the data set lives or what it is called, e.g. `s3://corpora/fraud-2026q3.parquet`.
    pub source: String,
    pub sha256: Sha256Digest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationResult {
    pub name: String,
    pub passed: bool,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
}

/// Validation results a validator signed over a version's artifacts, verified and kept
/// (AISVS 3.2.3): what the promotion gate reads over the version's own claims.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestedValidation {
    pub signer: String,
    pub suite: String,
    pub results: Vec<ValidationResult>,
    pub envelope_sha256: String,
    pub attached_at: chrono::DateTime<chrono::Utc>,
    pub attached_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeDependency {
    pub package: String,
    pub version: String,
}

/// Unparsed provenance as a client sends it; [`Provenance::parse`] turns it into the real thing.
#[derive(Debug, Clone, Default)]
pub struct ProvenanceInput {
    pub training_data: Vec<(String, String)>,
    pub validations: Vec<ValidationResult>,
    pub runtime_dependencies: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Provenance {
    pub training_data: Vec<DataChecksum>,
    pub validations: Vec<ValidationResult>,
    pub runtime_dependencies: Vec<RuntimeDependency>,
}

fn label(field: &'static str, raw: &str) -> Result<String, ParseError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ParseError::new(field, "is empty"));
    }
    if value.chars().count() > MAX_LABEL {
        return Err(ParseError::new(
            field,
            format!("is longer than {MAX_LABEL} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ParseError::new(
            field,
            format!("{value:?} contains a control character"),
        ));
    }
    Ok(value.to_owned())
}

fn bounded<T>(field: &'static str, items: &[T]) -> Result<(), ParseError> {
    if items.len() > MAX_ENTRIES {
        return Err(ParseError::new(
            field,
            format!(
                "has {} entries; at most {MAX_ENTRIES} are accepted",
                items.len()
            ),
        ));
    }
    Ok(())
}

fn finite(field: &'static str, value: Option<f64>) -> Result<Option<f64>, ParseError> {
    match value {
        Some(v) if !v.is_finite() => Err(ParseError::new(field, "must be a finite number")),
        other => Ok(other),
    }
}

impl Provenance {
    pub fn parse(input: ProvenanceInput) -> Result<Self, ParseError> {
        bounded("training data", &input.training_data)?;
        bounded("validations", &input.validations)?;
        bounded("runtime dependencies", &input.runtime_dependencies)?;
        let training_data = input
            .training_data
            .iter()
            .map(|(source, digest)| {
                Ok(DataChecksum {
                    source: label("training data source", source)?,
                    sha256: Sha256Digest::parse(digest)?,
                })
            })
            .collect::<Result<_, ParseError>>()?;
        let mut validations: Vec<ValidationResult> = Vec::with_capacity(input.validations.len());
        for v in input.validations {
            let name = label("validation name", &v.name)?;
            if validations.iter().any(|seen| seen.name == name) {
                return Err(ParseError::new(
                    "validation name",
                    format!("{name:?} appears twice; each validation is reported once"),
                ));
            }
            validations.push(ValidationResult {
                name,
                passed: v.passed,
                score: finite("validation score", v.score)?,
                threshold: finite("validation threshold", v.threshold)?,
            });
        }
        let runtime_dependencies = input
            .runtime_dependencies
            .iter()
            .map(|(package, version)| {
                Ok(RuntimeDependency {
                    package: label("dependency package", package)?,
                    version: label("dependency version", version)?,
                })
            })
            .collect::<Result<_, ParseError>>()?;
        Ok(Self {
            training_data,
            validations,
            runtime_dependencies,
        })
    }

    /// Names of validations that did not pass; empty when promotion may proceed.
    pub fn failed_validations(&self) -> Vec<&str> {
        self.validations
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_normalised_to_lowercase_without_prefix() {
        let upper = "A".repeat(64);
        assert_eq!(
            Sha256Digest::parse(&format!("sha256:{upper}"))
                .unwrap()
                .as_str(),
            "a".repeat(64)
        );
        assert!(Sha256Digest::parse("abc").is_err());
        assert!(Sha256Digest::parse(&"g".repeat(64)).is_err());
    }

    #[test]
    fn duplicate_validation_names_and_nan_scores_are_refused() {
        let v = |name: &str, score| ValidationResult {
            name: name.into(),
            passed: true,
            score,
            threshold: None,
        };
        let dup = ProvenanceInput {
            validations: vec![v("acc", None), v("acc", None)],
            ..Default::default()
        };
        assert!(
            Provenance::parse(dup)
                .unwrap_err()
                .message
                .contains("twice")
        );
        let nan = ProvenanceInput {
            validations: vec![v("acc", Some(f64::NAN))],
            ..Default::default()
        };
        assert_eq!(
            Provenance::parse(nan).unwrap_err().field,
            "validation score"
        );
    }

    #[test]
    fn failed_validations_are_listed_by_name() {
        let p = Provenance {
            validations: vec![
                ValidationResult {
                    name: "toxicity".into(),
                    passed: false,
                    score: Some(0.2),
                    threshold: Some(0.1),
                },
                ValidationResult {
                    name: "accuracy".into(),
                    passed: true,
                    score: None,
                    threshold: None,
                },
            ],
            ..Default::default()
        };
        assert_eq!(p.failed_validations(), vec!["toxicity"]);
    }
}
