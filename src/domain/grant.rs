//! Grants: a role held on one model or on a family of models, beside a token's own role.
//!
//! A grant names a model (`fraud-scorer`), a family by its prefix (`fraud-*`) or every
//! model (`*`), and goes to one token or to every token of a team. On a model, the most
//! specific grant that applies decides the role: an exact name before a longer prefix
//! before a shorter one before `*`, a token's own grant before its team's, the newer
//! before the older. With no grant, the token's own role stands. So a grant can widen
//! (a reader made governance of `fraud-*`) and fence off (a governance token held to
//! reader on `payments-*`).

use super::{GrantId, ModelName, ParseError, Role, TeamName, TokenName};
use chrono::{DateTime, Utc};
use std::fmt;

/// The models a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GrantPattern {
    /// One model by its name.
    Exact(ModelName),
    /// Every model whose name starts with this (possibly empty) prefix.
    Prefix(String),
}

impl GrantPattern {
    /// `name`, `prefix*` or `*`.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let Some(prefix) = raw.strip_suffix('*') else {
            return ModelName::parse(raw)
                .map(Self::Exact)
                .map_err(|e| ParseError::new("model", e.message));
        };
        if prefix.is_empty() {
            return Ok(Self::Prefix(String::new()));
        }
        // A prefix is a model name's start: the same alphabet, and `fraud-` is a fine
        // prefix though no model may end with '-'; checked by completing it.
        ModelName::parse(&format!("{prefix}0")).map_err(|_| {
            ParseError::new(
                "model",
                format!("{raw:?} is not a model name, a name's prefix followed by '*', or '*'"),
            )
        })?;
        Ok(Self::Prefix(prefix.to_owned()))
    }

    pub fn matches(&self, model: &ModelName) -> bool {
        match self {
            Self::Exact(name) => name == model,
            Self::Prefix(prefix) => model.as_str().starts_with(prefix.as_str()),
        }
    }

    /// Higher is more specific: an exact name above every prefix, a longer prefix above
    /// a shorter one.
    pub fn specificity(&self) -> usize {
        match self {
            Self::Exact(_) => usize::MAX,
            Self::Prefix(prefix) => prefix.len(),
        }
    }
}

impl fmt::Display for GrantPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => write!(f, "{name}"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl serde::Serialize for GrantPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Who holds a grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Grantee {
    Token(TokenName),
    /// Every token of the team.
    Team(TeamName),
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(name) => write!(f, "token {name}"),
            Self::Team(name) => write!(f, "team {name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub id: GrantId,
    pub pattern: GrantPattern,
    pub grantee: Grantee,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// The roles a grant may confer. Admin manages the service itself (tokens, signers,
/// sources), which no model scopes, so it is never granted on models.
pub fn grantable(role: Role) -> Result<Role, ParseError> {
    if role == Role::Admin {
        return Err(ParseError::new(
            "role",
            "admin is not granted on models: it manages the service as a whole; one of reader, owner, governance, security, auditor is accepted",
        ));
    }
    Ok(role)
}

impl Grant {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    pub fn applies_to(&self, token: &TokenName, team: Option<&TeamName>) -> bool {
        match &self.grantee {
            Grantee::Token(name) => name == token,
            Grantee::Team(name) => team == Some(name),
        }
    }

    /// The grant that decides `token`'s role on `model` among `grants`, if any.
    pub fn deciding<'a>(
        grants: &'a [Grant],
        model: &ModelName,
        (token, team): (&TokenName, Option<&TeamName>),
        now: DateTime<Utc>,
    ) -> Option<&'a Grant> {
        grants
            .iter()
            .filter(|g| g.is_active(now) && g.applies_to(token, team) && g.pattern.matches(model))
            .max_by_key(|g| {
                (
                    g.pattern.specificity(),
                    matches!(g.grantee, Grantee::Token(_)),
                    g.id,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: i64, pattern: &str, grantee: Grantee, role: Role) -> Grant {
        Grant {
            id: GrantId(id),
            pattern: GrantPattern::parse(pattern).unwrap(),
            grantee,
            role,
            expires_at: None,
            created_at: DateTime::UNIX_EPOCH,
            created_by: "admin".into(),
        }
    }

    fn token(name: &str) -> Grantee {
        Grantee::Token(TokenName::parse(name).unwrap())
    }

    fn team(name: &str) -> Grantee {
        Grantee::Team(TeamName::parse(name).unwrap())
    }

    #[test]
    fn patterns_parse_as_a_name_a_prefix_or_everything() {
        assert_eq!(GrantPattern::parse("*").unwrap().to_string(), "*");
        assert_eq!(
            GrantPattern::parse("fraud-*").unwrap().to_string(),
            "fraud-*"
        );
        assert!(matches!(
            GrantPattern::parse("fraud").unwrap(),
            GrantPattern::Exact(_)
        ));
        for bad in ["", "Fraud*", "fr*ud", "**", "a/b*", "-x*"] {
            assert!(GrantPattern::parse(bad).is_err(), "{bad}");
        }
        let m = ModelName::parse("fraud-scorer").unwrap();
        assert!(GrantPattern::parse("fraud-*").unwrap().matches(&m));
        assert!(GrantPattern::parse("*").unwrap().matches(&m));
        assert!(!GrantPattern::parse("fraud").unwrap().matches(&m));
    }

    #[test]
    fn the_most_specific_active_grant_decides() {
        let now = DateTime::UNIX_EPOCH + chrono::Duration::days(10);
        let me = TokenName::parse("ci").unwrap();
        let ours = TeamName::parse("payments").unwrap();
        let model = ModelName::parse("fraud-scorer").unwrap();
        let mut grants = vec![
            grant(1, "*", token("ci"), Role::Reader),
            grant(2, "fraud-*", team("payments"), Role::Owner),
            grant(3, "fraud-*", token("ci"), Role::Governance),
            grant(4, "fraud-scorer", token("other"), Role::Security),
            grant(5, "fraud-scorer-v2", token("ci"), Role::Security),
        ];
        let decide = |grants: &[Grant]| {
            Grant::deciding(grants, &model, (&me, Some(&ours)), now).map(|g| g.id.0)
        };
        assert_eq!(
            decide(&grants),
            Some(3),
            "the token's own grant beats its team's"
        );
        grants.push(grant(6, "fraud-sc*", team("payments"), Role::Auditor));
        assert_eq!(
            decide(&grants),
            Some(6),
            "a longer prefix beats a shorter one"
        );
        grants.push(Grant {
            expires_at: Some(now),
            ..grant(7, "fraud-scorer", token("ci"), Role::Owner)
        });
        assert_eq!(decide(&grants), Some(6), "an expired grant is ignored");
        grants.push(grant(8, "fraud-scorer", team("payments"), Role::Reader));
        assert_eq!(decide(&grants), Some(8), "an exact name beats every prefix");
        assert_eq!(
            Grant::deciding(&grants, &model, (&me, None), now).map(|g| g.id.0),
            Some(3),
            "a team's grants do not reach a token of no team"
        );
    }

    #[test]
    fn admin_is_never_granted() {
        assert!(grantable(Role::Admin).is_err());
        assert_eq!(grantable(Role::Governance), Ok(Role::Governance));
    }
}
