//! The roles an API token can hold. A token holds exactly one role; what each role may
//! do is declared next to every GraphQL field and REST route (see `auth::Actor`).

use super::ParseError;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries the registry and, later, the inventory.
    Reader,
    /// Manages its own team's models (and, later, consumers).
    Owner,
    /// Schedules and executes retirements.
    Governance,
    /// Emergency actions and overrides with a written justification.
    Security,
    /// Reads the audit log and destruction certificates.
    Auditor,
    /// Manages tokens, signers and settings.
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Reader,
        Role::Owner,
        Role::Governance,
        Role::Security,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Owner => "owner",
            Role::Governance => "governance",
            Role::Security => "security",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                ParseError::new(
                    "role",
                    format!("{raw:?} is not a role; one of reader, owner, governance, security, auditor, admin is accepted"),
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
