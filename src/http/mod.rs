//! The axum router. Every route needs a bearer token except `/healthz`, `/readyz`, the
//! GraphiQL page (static HTML that holds no data; `http.graphiql = false` turns it off)
//! `/v1/hooks/registrations`, `/v1/hooks/security-alerts` and
//! `/v1/enforcement/confirmations`, which are authenticated by their webhook signature,
//! `/v1/acknowledgements/{token}`, whose token is an expiring HMAC naming one dependent
//! of one retirement, `/v1/revocations` (the signed revocation list is public: anyone
//! verifying a model signature must be able to consult it), `/v1/calendars/{secret}.ics`
//! (a calendar feed's secret address, revocable), and
//! `/graphql/ws`, whose `connection_init` must carry a token before anything runs.
//! The console's pages under `/ui` need a console session (a cookie got by signing in
//! with a token), except its sign-in form and its static assets.

mod acknowledgements;
mod artifacts;
mod audit_export;
mod auth;
mod boms;
mod client_address;
mod compliance;
pub use client_address::{ClientAddresses, ClientIp};
mod console;
mod decommission;
mod error;
mod graphiql;
mod health;
mod hooks;
mod limits;
mod retirements;
mod subscriptions;
mod sunset_headers;

pub use auth::Authenticated;
pub use error::ApiError;

use crate::config::Settings;
use crate::graphql::{Outcome, Schemas, SunsetSchema};
use crate::service::Services;
use async_graphql_axum::GraphQLRequest;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Router, middleware};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// The data schema, for subscriptions.
    pub schema: SunsetSchema,
    /// Both schemas and the alias cap, for `POST /graphql`.
    pub graphql: Schemas,
    pub graphiql: bool,
    /// How long a subscription socket may wait for its `connection_init`.
    pub connection_init_timeout_secs: u64,
    /// Where requests come from, for audit records.
    pub client_addresses: std::sync::Arc<ClientAddresses>,
}

/// Every route of the API in one table, with the layers each group needs. Longer than a
/// screen on purpose: a reader (or a reviewer checking that every route is authenticated)
/// sees the whole surface in one place.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let limit = settings.http.max_body_bytes;
    // Bodies are bounded per route: GraphQL requests by `http.max_body_bytes`, artifact
    // uploads by the service's own limit as they stream.
    let graphql_api = Router::new()
        .route("/graphql", axum::routing::post(graphql))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit));
    let artifact = get(artifacts::download)
        .put(artifacts::upload)
        .layer(DefaultBodyLimit::disable());
    let hooks = Router::new()
        .route(
            "/v1/hooks/registrations",
            axum::routing::post(hooks::registrations),
        )
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit));
    let alerts = Router::new()
        .route(
            "/v1/hooks/security-alerts",
            axum::routing::post(hooks::security_alerts),
        )
        .layer(DefaultBodyLimit::max(crate::service::MAX_ALERT_BYTES))
        .layer(RequestBodyLimitLayer::new(crate::service::MAX_ALERT_BYTES));
    // Signed by the enforcement point's own secret instead of a token.
    let confirmations = Router::new()
        .route(
            crate::service::CONFIRMATIONS_PATH,
            axum::routing::post(decommission::confirm),
        )
        .layer(DefaultBodyLimit::max(
            crate::service::MAX_CONFIRMATION_BYTES,
        ))
        .layer(RequestBodyLimitLayer::new(
            crate::service::MAX_CONFIRMATION_BYTES,
        ));
    // The token in the path is the credential (see `acknowledgements`).
    let acknowledgements = Router::new()
        .route(
            "/v1/acknowledgements/{token}",
            get(acknowledgements::show).post(acknowledgements::acknowledge),
        )
        .route(
            "/v1/acknowledgements/{token}/extension",
            axum::routing::post(acknowledgements::request_extension),
        )
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(RequestBodyLimitLayer::new(16 * 1024));
    let authenticated = graphql_api
        .route("/v1/audit/export", get(audit_export::export))
        .route(
            "/v1/models/{model}/compliance-report",
            get(compliance::report),
        )
        .route(
            "/v1/models/{model}/versions/{version}/dependents.cdx.json",
            get(boms::dependents),
        )
        .route(
            "/v1/consumers/{name}/dependencies.cdx.json",
            get(boms::dependencies),
        )
        .route(
            "/v1/models/{model}/versions/{version}/artifacts/{*path}",
            artifact,
        )
        .route(
            "/v1/models/{model}/versions/{version}/status",
            get(retirements::version_status),
        )
        .route("/v1/retirements/{id}", get(retirements::retirement))
        .route("/v1/retirements.ics", get(retirements::calendar))
        .route("/v1/disabled-versions", get(retirements::disabled_versions))
        .route("/v1/brownouts", get(retirements::brownouts))
        .route("/v1/certificates/{id}", get(decommission::certificate))
        .route(
            "/v1/models/{model}/versions/{version}/signature",
            axum::routing::put(artifacts::put_signature).layer(DefaultBodyLimit::max(
                crate::attest::model_signature::MAX_BUNDLE_BYTES,
            )),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // With a client CA configured, the webhook routes serve only connections that
    // presented a certificate it issued (their messages' signatures are checked as ever).
    let (hooks, alerts, confirmations) = if settings.http.tls.client_ca_file.is_some() {
        let mtls = || middleware::from_fn(require_client_certificate);
        (
            hooks.route_layer(mtls()),
            alerts.route_layer(mtls()),
            confirmations.route_layer(mtls()),
        )
    } else {
        (hooks, alerts, confirmations)
    };
    let console = if settings.http.console {
        let policy = console::CookiePolicy {
            public_https: settings
                .notifications
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        };
        console::router(state.clone()).layer(axum::Extension(policy))
    } else {
        Router::new()
    };
    Router::new()
        .route("/graphql", get(graphiql::page))
        .route("/graphql/assets/{name}", get(graphiql::asset))
        .route("/graphql/ws", get(subscriptions::upgrade))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/v1/revocations", get(decommission::revocations))
        .route("/v1/calendars/{file}", get(retirements::secret_calendar))
        .merge(hooks)
        .merge(confirmations)
        .merge(alerts)
        .merge(acknowledgements)
        .merge(authenticated)
        .merge(console)
        .layer(middleware::from_fn_with_state(
            limits::RequestLimits::new(&settings.http),
            limits::bound,
        ))
        .layer(middleware::from_fn(crate::prometheus::track_http))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// Refuses a request whose connection presented no client certificate from the
/// configured client CA (a certificate from any other issuer ended the handshake).
async fn require_client_certificate(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::extract::ConnectInfo;
    let presented = request
        .extensions()
        .get::<ConnectInfo<crate::tls::Peer>>()
        .is_some_and(|ConnectInfo(peer)| peer.client_certificate);
    if presented {
        next.run(request).await
    } else {
        ApiError::unauthenticated(
            "this route needs a client certificate issued by the CA in http.tls.client_ca_file",
        )
        .into_response()
    }
}

/// `POST /graphql`, following GraphQL over HTTP: a client that accepts
/// `application/graphql-response+json` gets that type, and a 400 when the request was
/// refused before execution (no `data`); others get `application/json` and 200.
async fn graphql(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    headers: axum::http::HeaderMap,
    request: GraphQLRequest,
) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let started = std::time::Instant::now();
    let (response, outcome, label) = state
        .graphql
        .execute_labelled(request.into_inner().data(actor.clone()))
        .await;
    let (kind, field) = label.unwrap_or(("unknown", "-".to_owned()));
    let result = match outcome {
        Outcome::Refused => "refused",
        Outcome::Executed if response.errors.is_empty() => "ok",
        Outcome::Executed => "errors",
    };
    crate::prometheus::record_graphql(kind, field, result, started.elapsed());
    let refusals = forbidden_fields(&response);
    state
        .services
        .audit()
        .record_refusals(&actor, "graphql", &refusals)
        .await;
    let modern = accepts_graphql_response(&headers);
    let status = if modern && outcome == Outcome::Refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = if modern {
        "application/graphql-response+json; charset=utf-8"
    } else {
        "application/json"
    };
    // A request refused before execution has no `data` at all (GraphQL over HTTP).
    let body = match serde_json::to_value(&response).and_then(|mut value| {
        if modern
            && outcome == Outcome::Refused
            && let Some(fields) = value.as_object_mut()
        {
            fields.remove("data");
        }
        serde_json::to_vec(&value)
    }) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a GraphQL response");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut answer = (status, body).into_response();
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

/// The fields refused by an authorisation rule. Audit reads are left out: their refusal
/// is recorded where it happens, as `audit.read_denied` with the query that was asked.
fn forbidden_fields(response: &async_graphql::Response) -> Vec<crate::service::Refusal> {
    use async_graphql::{PathSegment, Value};
    let forbidden = Value::String("FORBIDDEN".into());
    response
        .errors
        .iter()
        .filter(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|code| *code == forbidden)
        })
        .filter(|e| !matches!(e.path.first(), Some(PathSegment::Field(f)) if f == "auditLog"))
        .map(|e| crate::service::Refusal {
            at: e
                .path
                .iter()
                .map(|segment| match segment {
                    PathSegment::Field(f) => f.clone(),
                    PathSegment::Index(i) => i.to_string(),
                })
                .collect::<Vec<_>>()
                .join("."),
            message: e.message.clone(),
        })
        .collect()
}

/// Whether the `Accept` header lists `application/graphql-response+json`.
fn accepts_graphql_response(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/graphql-response+json")
            })
        })
}

/// The span of a request: method and path, with the credential of acknowledgement links
/// cut out (the query string is left out too), so a debug log holds no token.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = request.uri().path();
    let path = if path.starts_with("/v1/acknowledgements/") {
        "/v1/acknowledgements/[token]"
    } else if path.starts_with("/v1/calendars/") {
        "/v1/calendars/[secret]"
    } else {
        path
    };
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %path,
        trace_id = tracing::field::Empty
    );
    let trace_id = crate::telemetry::join_trace(&span, traceparent);
    span.record("trace_id", trace_id.as_str());
    span
}
