//! The GraphiQL page at `GET /graphql` and its assets under `/graphql/assets/`, embedded
//! in the binary (vendored from npm: graphiql 3.8.3 with React 18.3.1; licences in
//! `assets/graphiql/LICENSES.txt`). Nothing loads from a CDN, so the page works in an
//! air-gapped network, and its Content-Security-Policy allows scripts from this server
//! only, none inline: the page where people paste bearer tokens runs no one else's code.
//! Static files that hold no data: no token needed. `http.graphiql = false` turns them off.

use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Styles may be inline (GraphiQL's components set them); scripts and everything else
/// come from this origin only.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("../../assets/graphiql/index.html");

/// (name, content type, bytes) of every asset.
const ASSETS: [(&str, &str, &[u8]); 5] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/init.js"),
    ),
];

pub async fn page(State(state): State<AppState>) -> Response {
    if !state.graphiql {
        return turned_off();
    }
    with_headers(PAGE.as_bytes(), "text/html; charset=utf-8", "no-cache")
}

pub async fn asset(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if !state.graphiql {
        return turned_off();
    }
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => with_headers(bytes, content_type, "public, max-age=3600"),
        None => ApiError::not_found(format!("no GraphiQL asset {name:?}")).into_response(),
    }
}

fn turned_off() -> Response {
    ApiError::not_found("GraphiQL is turned off (http.graphiql = false)").into_response()
}

fn with_headers(bytes: &'static [u8], content_type: &'static str, cache: &'static str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
