//! Who depends on a model version: the same answer as GraphQL's `dependents` (its
//! revision, `complete` and omitted counts shown as they are), the impact summary, a
//! drawing, filters by environment, kind and activity, and one node's evidence.

use super::drawing::{self, Dot, Drawing};
use super::{Chrome, ConsolePage, ConsoleUser, PageError};
use crate::graph::{Answer, Impact, Reached, Step, Target};
use crate::http::AppState;
use crate::service::Ask;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

/// Rows of the list per page.
const ROWS: usize = 100;
/// What "active" means on this page, as in GraphQL's `impact(activeDays:)` default.
const ACTIVE_DAYS: u32 = 30;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Filters {
    environment: String,
    kind: String,
    /// `current` (some evidence not stale), `stale`, or anything else for all.
    activity: String,
    depth: Option<u32>,
    node: Option<String>,
    limit: Option<usize>,
    page: usize,
}

/// One dependent as the list shows it.
#[derive(Clone)]
pub struct Row {
    pub label: String,
    pub depth: u32,
    pub kind: String,
    pub environment: String,
    pub team: String,
    pub parent: String,
    pub stale: bool,
    pub origins: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "console/dependents.html")]
struct DependentsPage {
    chrome: Chrome,
    model: String,
    version: String,
    answer: Answer,
    impact: Impact,
    active_days: u32,
    filters: Filters,
    environments: Vec<String>,
    kinds: Vec<String>,
    drawing: Drawing,
    /// Rows after the filters, and the page of them shown.
    matching: usize,
    rows: Vec<Row>,
    previous_page: Option<String>,
    next_page: Option<String>,
    selected: Option<Selected>,
}

/// The node whose evidence is shown: its explaining path, step by step.
struct Selected {
    label: String,
    steps: Vec<Step>,
}

/// `GET /ui/models/{model}/versions/{version}/dependents`.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path((model, version)): Path<(String, String)>,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    let inventory = state.services.inventory();
    let ask = Ask {
        transitive: true,
        max_depth: None,
        include_stale: true,
        limit: filters.limit,
    };
    let answer = inventory.dependents(&model, &version, ask).await?;
    let impact = inventory.impact(&model, &version, ACTIVE_DAYS).await?;
    let base = format!("/ui/models/{model}/versions/{version}/dependents");
    let all: Vec<Row> = answer
        .reached
        .iter()
        .map(|r| row(r, &base, &filters))
        .collect();
    let selected = filters.node.as_deref().and_then(|n| {
        answer
            .reached
            .iter()
            .find(|r| r.target.label() == n)
            .map(|r| Selected {
                label: n.to_owned(),
                steps: r.path.clone(),
            })
    });
    let matching: Vec<&Row> = all.iter().filter(|r| keeps(&filters, r)).collect();
    let center = format!("{model}@{version}");
    let dots: Vec<Dot<'_>> = matching
        .iter()
        .map(|r| Dot {
            label: &r.label,
            depth: r.depth,
            parent: &r.parent,
            kind: &r.kind,
            derived: r.kind == "derived model",
            href: r.href.clone(),
            selected: filters.node.as_deref() == Some(r.label.as_str()),
        })
        .collect();
    let drawing = drawing::draw(&center, &dots, |kind, depth| {
        link(
            &base,
            &filters,
            &[("kind", kind), ("depth", &depth.to_string())],
        )
    });
    let pages = matching.len().div_ceil(ROWS).max(1);
    let page = filters.page.min(pages - 1);
    let page_link = |p: usize| link(&base, &filters, &[("page", &p.to_string())]);
    let rows = matching
        .iter()
        .skip(page * ROWS)
        .take(ROWS)
        .map(|r| (*r).clone())
        .collect();
    let environments: Vec<String> = impact.by_environment.keys().cloned().collect();
    let kinds = impact
        .by_kind
        .keys()
        .cloned()
        .chain(["derived model".to_owned()])
        .collect();
    let title = format!("Dependents of {center}");
    Ok(ConsolePage(DependentsPage {
        chrome: Chrome::new(&user, "/ui/models", title),
        previous_page: (page > 0).then(|| page_link(page - 1)),
        next_page: (page + 1 < pages).then(|| page_link(page + 1)),
        matching: matching.len(),
        model,
        version,
        answer,
        impact,
        active_days: ACTIVE_DAYS,
        filters,
        environments,
        kinds,
        drawing,
        rows,
        selected,
    })
    .into_response())
}

fn row(r: &Reached, base: &str, filters: &Filters) -> Row {
    let label = r.target.label();
    let first = r.path.first();
    let (kind, environment, team) = match &r.target {
        Target::Consumer(c) => (
            c.kind.as_str().to_owned(),
            c.environment.to_string(),
            c.owner_team.to_string(),
        ),
        Target::Version { .. } => ("derived model".to_owned(), String::new(), String::new()),
    };
    let evidence = first.map(|s| s.evidence.as_slice()).unwrap_or_default();
    let mut origins: Vec<&str> = evidence.iter().map(|e| e.origin.as_str()).collect();
    origins.dedup();
    Row {
        href: link(base, filters, &[("node", &label)]) + "#evidence",
        depth: r.depth,
        parent: first.map(|s| s.to.to_string()).unwrap_or_default(),
        stale: !evidence.is_empty() && evidence.iter().all(|e| e.stale),
        origins: origins.join(", "),
        label,
        kind,
        environment,
        team,
    }
}

fn keeps(f: &Filters, r: &Row) -> bool {
    (f.environment.is_empty() || f.environment == r.environment)
        && (f.kind.is_empty() || f.kind == r.kind)
        && f.depth
            // The outer ring's groups hold every deeper node too.
            .is_none_or(|d| r.depth.min(drawing::RINGS) == d.min(drawing::RINGS))
        && match f.activity.as_str() {
            "current" => !r.stale,
            "stale" => r.stale,
            _ => true,
        }
}

/// This page's address with the current filters and `set` replacing theirs.
fn link(base: &str, f: &Filters, set: &[(&str, &str)]) -> String {
    let depth = f.depth.map(|d| d.to_string()).unwrap_or_default();
    let limit = f.limit.map(|l| l.to_string()).unwrap_or_default();
    let mut params: Vec<(&str, &str)> = vec![
        ("environment", &f.environment),
        ("kind", &f.kind),
        ("activity", &f.activity),
        ("depth", &depth),
        ("limit", &limit),
    ];
    for (k, v) in set {
        params.retain(|(key, _)| key != k);
        params.push((k, v));
    }
    params.retain(|(_, v)| !v.is_empty());
    format!(
        "{base}?{}",
        serde_urlencoded::to_string(&params).unwrap_or_default()
    )
}
