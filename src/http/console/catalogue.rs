//! The catalogue: models searched by name, team, tier and lifecycle status; a model's
//! versions with status, signature, artifacts, provenance and retirement.

use super::{Chrome, ConsolePage, ConsoleUser, PageError};
use crate::domain::{LifecycleStatus, RegisteredModel, RegisteredVersion, Tier};
use crate::http::AppState;
use crate::service::{ArtifactInfo, ModelSearch};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

const PAGE: u64 = 50;
/// Versions shown on a model's page (the registry's page size).
const VERSIONS: u64 = 100;

#[derive(Template)]
#[template(path = "console/models.html")]
struct ModelsPage {
    chrome: Chrome,
    search: ModelSearch,
    tiers: Vec<&'static str>,
    statuses: Vec<&'static str>,
    models: Vec<RegisteredModel>,
    /// The address of the next page, when there is one.
    next: Option<String>,
    error: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct SearchQuery {
    #[serde(flatten)]
    search: ModelSearch,
    after: Option<String>,
}

/// `GET /ui/models`: the search form and a page of results.
pub async fn models(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Query(query): Query<SearchQuery>,
) -> Response {
    let registry = state.services.registry();
    let found = registry
        .search_models(&query.search, query.after.as_deref(), PAGE + 1)
        .await;
    let (mut models, error) = match found {
        Ok(models) => (models, None),
        Err(e) => (Vec::new(), Some(PageError::from(e).message().to_owned())),
    };
    let next = (models.len() as u64 > PAGE).then(|| {
        models.truncate(PAGE as usize);
        let last = models
            .last()
            .map(|m| m.name.to_string())
            .unwrap_or_default();
        let s = &query.search;
        let params = [
            ("q", s.name_part.as_str()),
            ("team", &s.team),
            ("tier", &s.tier),
            ("status", &s.status),
            ("after", &last),
        ];
        format!(
            "/ui/models?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    });
    let status = super::page::status_with(&error);
    let page = ModelsPage {
        chrome: Chrome::new(&user, "/ui/models", "Catalogue"),
        search: query.search,
        tiers: Tier::ALL.iter().map(|t| t.as_str()).collect(),
        statuses: LifecycleStatus::ALL.iter().map(|s| s.as_str()).collect(),
        models,
        next,
        error,
    };
    (status, ConsolePage(page)).into_response()
}

#[derive(Template)]
#[template(path = "console/model.html")]
struct ModelPage {
    chrome: Chrome,
    model: RegisteredModel,
    versions: Vec<VersionRow>,
    /// Whether the viewer may read the model's compliance report.
    may_report: bool,
    policy: crate::domain::ModelPolicy,
    /// The rules set on this model rather than by its tier.
    own_rules: Vec<&'static str>,
    /// What retention proposed for its versions, newest first.
    proposals: Vec<crate::domain::RetentionProposal>,
    /// Whether the viewer may decide on them (the use cases check again).
    may_govern: bool,
    /// Why a decision taken on this page was not.
    error: Option<String>,
}

struct VersionRow {
    version: RegisteredVersion,
    /// A promotion to production waiting for its second person.
    promotion: Option<crate::service::PromotionRequest>,
    signature: Option<crate::domain::StoredSignature>,
    artifacts: Vec<ArtifactInfo>,
    retirement: Option<crate::domain::Retirement>,
}

/// `GET /ui/models/{name}`: the model and each of its versions.
pub async fn model(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    render_model(&state, &user, &name, None).await
}

/// The model's page, with why a decision taken on it was not, if one was not.
pub(super) async fn render_model(
    state: &AppState,
    user: &ConsoleUser,
    name: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let services = &state.services;
    let model = services
        .registry()
        .model(name)
        .await?
        .ok_or_else(|| PageError::not_found(format!("no model named {name}")))?;
    let listed = services
        .registry()
        .versions(&model.name, None, VERSIONS)
        .await?;
    let mut versions = Vec::with_capacity(listed.len());
    for version in listed {
        let (m, v) = (model.name.as_str(), version.version.to_string());
        versions.push(VersionRow {
            signature: services.registry().signature(m, &v).await?,
            artifacts: services.artifacts().list(m, &v).await?,
            retirement: services.decommission().retirement_of_version(m, &v).await?,
            promotion: services
                .registry()
                .promotion_request(&model.name, version.version)
                .await?,
            version,
        });
    }
    let (policy, own) = services
        .registry()
        .model_policy(model.name.as_str())
        .await?;
    let proposals = services
        .retirements()
        .retention_proposals(Some(model.name.as_str()), None)
        .await?;
    let own_rules = own.own_rules();
    let title = model.name.to_string();
    let status = super::page::status_with(&error);
    let page = ModelPage {
        may_report: user.actor().has_role(crate::service::REPORT_ROLES),
        may_govern: crate::service::may_govern_retirements(user.actor()),
        policy,
        own_rules,
        proposals,
        error,
        chrome: Chrome::new(user, "/ui/models", title),
        model,
        versions,
    };
    Ok((status, ConsolePage(page)).into_response())
}
