//! The body of a registration webhook: consumers with what they use and call, and
//! derivations between model versions. Parsed whole before anything is applied, and
//! every error names the registration it is in, so a sender can fix its batch.
//!
//! ```json
//! { "registrations": [
//!   { "type": "consumer", "name": "checkout-api", "kind": "service",
//!     "ownerTeam": "payments", "environment": "production",
//!     "contacts": ["payments-oncall@example.org"],
//!     "uses": [{ "model": "fraud-scorer", "version": "^2.1" }],
//!     "dependsOn": ["fraud-gateway"] },
//!   { "type": "derivation", "model": "fraud-scorer-eu", "version": "1.0.0",
//!     "from": { "model": "fraud-scorer", "version": "2.1.0" }, "derivation": "fine-tune" }
//! ] }
//! ```

use crate::domain::{
    ConsumerKind, ConsumerName, Contacts, Derivation, Environment, ModelName, ParseError, TeamName,
    Version, VersionRange,
};
use serde::Deserialize;

/// The most `uses` or `dependsOn` entries one consumer registration may list.
pub const MAX_LINKS: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    Consumer {
        name: ConsumerName,
        kind: ConsumerKind,
        owner_team: TeamName,
        environment: Environment,
        contacts: Contacts,
        uses: Vec<(ModelName, VersionRange)>,
        depends_on: Vec<ConsumerName>,
    },
    Derivation {
        model: ModelName,
        version: Version,
        parent_model: ModelName,
        parent_version: Version,
        derivation: Derivation,
    },
}

impl Registration {
    /// The consumer a consumer registration declares, without a notice endpoint (that is
    /// managed through GraphQL, where its secret is shown, and a registration keeps it).
    pub fn consumer(&self) -> Option<crate::domain::Consumer> {
        match self {
            Registration::Consumer {
                name,
                kind,
                owner_team,
                environment,
                contacts,
                ..
            } => Some(crate::domain::Consumer {
                name: name.clone(),
                kind: *kind,
                owner_team: owner_team.clone(),
                environment: environment.clone(),
                contacts: contacts.clone(),
                webhook_url: None,
                discovered: false,
            }),
            Registration::Derivation { .. } => None,
        }
    }

    /// What the registration is about, for messages and audit records.
    pub fn label(&self) -> String {
        match self {
            Registration::Consumer { name, .. } => format!("consumer {name}"),
            Registration::Derivation { model, version, .. } => {
                format!("derivation of {model}@{version}")
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    registrations: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Raw {
    #[serde(rename_all = "camelCase")]
    Consumer {
        name: String,
        kind: String,
        owner_team: String,
        environment: String,
        #[serde(default)]
        contacts: Vec<String>,
        #[serde(default)]
        uses: Vec<RawUse>,
        #[serde(default)]
        depends_on: Vec<String>,
    },
    Derivation {
        model: String,
        version: String,
        from: RawVersion,
        #[serde(default)]
        derivation: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUse {
    model: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersion {
    model: String,
    version: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistrationError {
    #[error("the body is not a registration batch: {0}")]
    Body(String),
    #[error("the batch holds {0} registrations; at most {1} are accepted")]
    TooMany(usize, usize),
    #[error("the batch holds no registrations")]
    Empty,
    /// `registration N`: what is wrong with it.
    #[error("registration {index}{label}: {message}")]
    Invalid {
        index: usize,
        label: String,
        message: String,
    },
}

/// Parses a whole batch; the first invalid registration fails it.
pub fn parse(body: &[u8], max: usize) -> Result<Vec<Registration>, RegistrationError> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| RegistrationError::Body(e.to_string()))?;
    if body.registrations.is_empty() {
        return Err(RegistrationError::Empty);
    }
    if body.registrations.len() > max {
        return Err(RegistrationError::TooMany(body.registrations.len(), max));
    }
    body.registrations
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let label = value
                .get("name")
                .or_else(|| value.get("model"))
                .and_then(|v| v.as_str())
                .map(|n| format!(" ({})", n.chars().take(100).collect::<String>()))
                .unwrap_or_default();
            // Numbered as people count, from 1.
            let invalid = |message: String| RegistrationError::Invalid {
                index: index + 1,
                label: label.clone(),
                message,
            };
            let raw: Raw = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
            one(raw).map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

fn one(raw: Raw) -> Result<Registration, ParseError> {
    Ok(match raw {
        Raw::Consumer {
            name,
            kind,
            owner_team,
            environment,
            contacts,
            uses,
            depends_on,
        } => {
            if uses.len() > MAX_LINKS || depends_on.len() > MAX_LINKS {
                return Err(ParseError::new(
                    "uses",
                    format!("uses and dependsOn may list at most {MAX_LINKS} entries each"),
                ));
            }
            let name = ConsumerName::parse(&name)?;
            let depends_on = depends_on
                .iter()
                .map(|d| ConsumerName::parse(d))
                .collect::<Result<Vec<_>, _>>()?;
            if depends_on.contains(&name) {
                return Err(ParseError::new(
                    "dependsOn",
                    format!("{name} cannot depend on itself"),
                ));
            }
            let kind = ConsumerKind::parse(&kind)?;
            if kind == ConsumerKind::Gateway {
                return Err(ParseError::new(
                    "kind",
                    "gateway (an enforcement point) is registered by an admin (declareConsumer), never by webhook",
                ));
            }
            Registration::Consumer {
                name,
                kind,
                owner_team: TeamName::parse(&owner_team)?,
                environment: Environment::parse(&environment)?,
                contacts: Contacts::parse(&contacts)?,
                uses: uses
                    .iter()
                    .map(|u| {
                        Ok((
                            ModelName::parse(&u.model)?,
                            VersionRange::parse(&u.version)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, ParseError>>()?,
                depends_on,
            }
        }
        Raw::Derivation {
            model,
            version,
            from,
            derivation,
        } => Registration::Derivation {
            model: ModelName::parse(&model)?,
            version: Version::parse(&version)?,
            parent_model: ModelName::parse(&from.model)?,
            parent_version: Version::parse(&from.version)?,
            derivation: derivation
                .as_deref()
                .map(Derivation::parse)
                .transpose()?
                .unwrap_or(Derivation::Other),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let body = br#"{ "registrations": [
          { "type": "consumer", "name": "checkout-api", "kind": "service",
            "ownerTeam": "payments", "environment": "production",
            "contacts": ["payments-oncall@example.org"],
            "uses": [{ "model": "fraud-scorer", "version": "^2.1" }],
            "dependsOn": ["fraud-gateway"] },
          { "type": "derivation", "model": "fraud-scorer-eu", "version": "1.0.0",
            "from": { "model": "fraud-scorer", "version": "2.1.0" }, "derivation": "fine-tune" }
        ] }"#;
        let regs = parse(body, 10).unwrap();
        assert_eq!(regs.len(), 2);
        assert_eq!(regs[0].label(), "consumer checkout-api");
        assert!(matches!(
            &regs[1],
            Registration::Derivation {
                derivation: Derivation::FineTune,
                ..
            }
        ));
    }

    #[test]
    fn an_invalid_registration_is_named_by_its_place_and_name() {
        let body = br#"{ "registrations": [
          { "type": "consumer", "name": "ok", "kind": "service", "ownerTeam": "t", "environment": "e" },
          { "type": "consumer", "name": "bad", "kind": "service", "ownerTeam": "t", "environment": "e",
            "uses": [{ "model": "m", "version": "two" }] }
        ] }"#;
        let e = parse(body, 10).unwrap_err().to_string();
        assert!(e.starts_with("registration 2 (bad): version range"), "{e}");

        let e = parse(br#"{ "registrations": [{ "type": "consumer", "name": "x", "kind": "service", "ownerTeam": "t", "environment": "e", "colour": "red" }] }"#, 10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("registration 1 (x)") && e.contains("colour"),
            "{e}"
        );
    }

    #[test]
    fn a_gateway_cannot_be_registered_by_webhook() {
        let e = parse(
            br#"{ "registrations": [{ "type": "consumer", "name": "gw", "kind": "gateway", "ownerTeam": "t", "environment": "e" }] }"#,
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("registered by an admin"), "{e}");
    }

    #[test]
    fn batches_are_bounded_and_must_hold_something() {
        let one = r#"{ "type": "derivation", "model": "a", "version": "1.0.0", "from": { "model": "b", "version": "1.0.0" } }"#;
        let three = format!("{{ \"registrations\": [{one},{one},{one}] }}");
        assert_eq!(
            parse(three.as_bytes(), 2).unwrap_err(),
            RegistrationError::TooMany(3, 2)
        );
        assert_eq!(
            parse(br#"{ "registrations": [] }"#, 2).unwrap_err(),
            RegistrationError::Empty
        );
        assert!(matches!(
            parse(b"not json", 2),
            Err(RegistrationError::Body(_))
        ));
    }
}
