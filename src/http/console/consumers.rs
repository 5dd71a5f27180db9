//! Consumers: a search by name, and a consumer's page with what it is, what it depends
//! on (the API's `dependencies` answer, with its revision and completeness) and the
//! retirements that found it among their dependents, with its standing in each; its
//! owners acknowledge a retirement or ask for more time from there.

use super::retirements::utc_minute;
use super::{Chrome, ConsolePage, ConsoleUser, PageError, Posted};
use crate::domain::{Consumer, Dependent, Retirement, RetirementId};
use crate::graph::{Answer, Target};
use crate::http::AppState;
use crate::service::{Ask, Requester, ServiceError, may_act_for_consumer};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};

/// Consumers listed per page of the search.
const PAGE: usize = 50;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct SearchQuery {
    q: String,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "console/consumers.html")]
struct ListPage {
    chrome: Chrome,
    q: String,
    consumers: Vec<Consumer>,
    next: Option<String>,
    error: Option<String>,
}

/// `GET /ui/consumers`: consumers whose name contains the text searched for.
pub async fn list(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Query(query): Query<SearchQuery>,
) -> Response {
    let found =
        state
            .services
            .inventory()
            .search_consumers(&query.q, query.after.as_deref(), PAGE + 1);
    let (mut consumers, error) = match found {
        Ok(c) => (c, None),
        Err(e) => (Vec::new(), Some(PageError::from(e).message().to_owned())),
    };
    let next = (consumers.len() > PAGE).then(|| {
        consumers.truncate(PAGE);
        let last = consumers
            .last()
            .map(|c| c.name.to_string())
            .unwrap_or_default();
        let params = [("q", query.q.as_str()), ("after", &last)];
        format!(
            "/ui/consumers?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    });
    let status = super::page::status_with(&error);
    let page = ListPage {
        chrome: Chrome::new(&user, "/ui/consumers", "Consumers"),
        q: query.q,
        consumers,
        next,
        error,
    };
    (status, ConsolePage(page)).into_response()
}

/// One thing the consumer depends on, as the list shows it.
struct Dependency {
    label: String,
    href: String,
    depth: u32,
    /// The node it is reached through (the consumer itself for a direct dependency).
    through: String,
    range: String,
    origins: String,
    stale: bool,
}

#[derive(Template)]
#[template(path = "console/consumer.html")]
struct ConsumerPage {
    chrome: Chrome,
    consumer: Consumer,
    answer: Answer,
    dependencies: Vec<Dependency>,
    affecting: Vec<(Retirement, Dependent)>,
    /// Whether the signed-in person may acknowledge and ask for more time for it.
    may_act: bool,
    error: Option<String>,
}

/// `GET /ui/consumers/{name}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    render(&state, &user, &name, None).await
}

async fn render(
    state: &AppState,
    user: &ConsoleUser,
    name: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let inventory = state.services.inventory();
    let consumer = inventory.consumer(name).await?;
    let ask = Ask {
        transitive: true,
        max_depth: None,
        include_stale: true,
        limit: None,
    };
    let answer = inventory.dependencies(name, ask).await?;
    let dependencies = answer.reached.iter().map(dependency).collect();
    let affecting = state
        .services
        .retirements()
        .affecting_consumer(name)
        .await?;
    let status = super::page::status_with(&error);
    let page = ConsumerPage {
        chrome: Chrome::new(user, "/ui/consumers", format!("Consumer {}", consumer.name)),
        may_act: may_act_for_consumer(user.actor(), &consumer.name, Some(&consumer.owner_team)),
        consumer,
        answer,
        dependencies,
        affecting,
        error,
    };
    Ok((status, ConsolePage(page)).into_response())
}

/// Back to the consumer's page: after the act, or with why it was not done.
async fn done<T>(
    state: &AppState,
    user: &ConsoleUser,
    name: &str,
    outcome: Result<T, ServiceError>,
) -> Result<Response, PageError> {
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/ui/consumers/{name}#affecting-title")).into_response()),
        Err(e) => {
            let message = PageError::refusal_or_message(e)?;
            render(state, user, name, Some(message)).await
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ActForm {
    retirement: i64,
    until: String,
    reason: String,
}

/// `POST /ui/consumers/{name}/acknowledge`: for its owners, a token bound to it, or
/// governance, as the API allows.
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<ActForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let outcome = state
        .services
        .retirements()
        .acknowledge_retirement(user.actor(), RetirementId(form.retirement), &name)
        .await;
    done(&state, &user, &name, outcome).await
}

/// `POST /ui/consumers/{name}/more-time`: asks for its notice to run until a later date.
pub async fn request_more_time(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<ActForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let outcome = async {
        let until = utc_minute("until", &form.until)?;
        state
            .services
            .retirements()
            .request_extension(
                Requester::Actor(user.actor(), &name),
                RetirementId(form.retirement),
                until,
                &form.reason,
            )
            .await
    };
    done(&state, &user, &name, outcome.await).await
}

fn dependency(r: &crate::graph::Reached) -> Dependency {
    let last = r.path.last();
    let evidence = last.map(|s| s.evidence.as_slice()).unwrap_or_default();
    let mut origins: Vec<&str> = evidence.iter().map(|e| e.origin.as_str()).collect();
    origins.dedup();
    let href = match &r.target {
        Target::Consumer(c) => format!("/ui/consumers/{}", c.name),
        Target::Version { model, .. } => format!("/ui/models/{model}"),
    };
    Dependency {
        label: r.target.label(),
        href,
        depth: r.depth,
        through: last.map(|s| s.from.to_string()).unwrap_or_default(),
        range: last
            .and_then(|s| s.range.as_ref())
            .map(|v| v.to_string())
            .unwrap_or_default(),
        origins: origins.join(", "),
        stale: !evidence.is_empty() && evidence.iter().all(|e| e.stale),
    }
}
