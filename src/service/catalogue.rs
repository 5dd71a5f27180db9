//! The catalogue's search: models by part of their name, team, tier and the status of a
//! version, as a person types them into the console's search form.

use super::ServiceError;
use super::registry::MAX_PAGE;
use crate::domain::{RegisteredModel, TeamName};
use crate::store::registry as repo;

/// A catalogue search as a person types it: empty parts ask nothing.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ModelSearch {
    #[serde(rename = "q")]
    pub name_part: String,
    pub team: String,
    pub tier: String,
    pub status: String,
}

impl super::Registry<'_> {
    /// The catalogue's search: models whose name contains `search.name_part`, of a team,
    /// a tier, with a version in a status; a page of `first` after `after` by name.
    pub async fn search_models(
        &self,
        search: &ModelSearch,
        after: Option<&str>,
        first: u64,
    ) -> Result<Vec<RegisteredModel>, ServiceError> {
        let part = search.name_part.trim();
        if part.len() > 64
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(crate::domain::ParseError::new(
                "name",
                "searches by part of a model name: letters, digits, '-', '_' and '.' only, 64 at most",
            )
            .into());
        }
        let team = (!search.team.trim().is_empty())
            .then(|| TeamName::parse(search.team.trim()))
            .transpose()?;
        let tier = (!search.tier.is_empty())
            .then(|| crate::domain::Tier::parse(&search.tier))
            .transpose()?;
        let status = (!search.status.is_empty())
            .then(|| crate::domain::LifecycleStatus::parse(&search.status))
            .transpose()?;
        let filter = repo::ModelFilter {
            // `_` matches any one character in LIKE; a name part with one still finds
            // the names holding it (and, harmlessly, a few more).
            name_part: (!part.is_empty()).then_some(part),
            team: team.as_ref(),
            tier,
            status,
            after_name: after,
        };
        Ok(repo::search_models(self.store().reader(), &filter, first.min(MAX_PAGE)).await?)
    }
}
