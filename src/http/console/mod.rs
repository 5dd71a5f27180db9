//! The web console under `/ui`: server-rendered pages (askama templates, escaped by
//! default) for the people who use sunset. Every page calls the same `service` methods
//! as GraphQL and REST, as the signed-in token's actor, so roles, audit records and
//! errors are the API's; the console adds no rule of its own. Assets are embedded and
//! served under a Content-Security-Policy that allows this origin's scripts and styles
//! only, none inline, so it works air-gapped and a name with markup stays text.
//!
//! A person signs in with an API token (`session.rs`); the session cookie is HttpOnly,
//! SameSite=Strict, Secure when the console is reached over TLS, and every form carries
//! the session's CSRF token, checked by [`Posted`] before a handler runs.

mod assets;
mod audit;
mod calendar;
mod catalogue;
mod certificates;
mod compliance;
mod consumers;
mod decisions;
mod dependents;
mod drawing;
mod emergency;
mod page;
mod retention;
mod retirements;
mod session;

use super::AppState;
use crate::service::ConsoleSession;
use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
pub use page::{Chrome, ConsolePage, PageError};
use serde::de::DeserializeOwned;
pub use session::CookiePolicy;

/// Name of the session cookie (its path is `/ui`).
pub const SESSION_COOKIE: &str = "sunset_session";
/// Largest console form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Only this origin's scripts and styles, none inline; forms post here only; no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The signed-in person behind a console request, put there by [`require_session`].
#[derive(Clone)]
pub struct ConsoleUser {
    pub session: ConsoleSession,
    /// This session's CSRF token, for the forms a page renders.
    pub csrf: String,
    /// The cookie's secret, to check a posted CSRF token against.
    secret: std::sync::Arc<zeroize::Zeroizing<String>>,
}

impl ConsoleUser {
    pub fn actor(&self) -> &crate::auth::Actor {
        &self.session.actor
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/models") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/models") }))
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/models", get(catalogue::models))
        .route("/ui/models/{name}", get(catalogue::model))
        .route("/ui/models/{name}/compliance", get(compliance::page))
        .route(
            "/ui/models/{name}/retention/{version}",
            post(retention::decide),
        )
        .route(
            "/ui/models/{name}/compliance.dsse.json",
            get(compliance::download),
        )
        .route(
            "/ui/models/{model}/versions/{version}/dependents",
            get(dependents::page),
        )
        .route(
            "/ui/retirements",
            get(retirements::list).post(retirements::schedule),
        )
        .route("/ui/retirements/new", get(retirements::new))
        .route("/ui/retirements/preview", post(retirements::preview))
        .route("/ui/retirements/{id}", get(retirements::show))
        .route("/ui/retirements/{id}/cancel", post(retirements::cancel))
        .route("/ui/retirements/{id}/postpone", post(decisions::postpone))
        .route(
            "/ui/retirements/{id}/accept-shorter-notice",
            post(decisions::accept_shorter_notice),
        )
        .route(
            "/ui/retirements/{id}/override",
            post(decisions::override_dependents),
        )
        .route(
            "/ui/retirements/{id}/extensions",
            post(decisions::decide_extension),
        )
        .route(
            "/ui/retirements/{id}/waive-purge",
            post(decisions::waive_purge),
        )
        .route("/ui/retirements/{id}/execute", post(decisions::execute))
        .route("/ui/calendar", get(calendar::page))
        .route("/ui/calendar/feeds", post(calendar::create_feed))
        .route(
            "/ui/calendar/feeds/{id}/revoke",
            post(calendar::revoke_feed),
        )
        .route("/ui/consumers", get(consumers::list))
        .route("/ui/consumers/{name}", get(consumers::show))
        .route(
            "/ui/consumers/{name}/acknowledge",
            post(consumers::acknowledge),
        )
        .route(
            "/ui/consumers/{name}/more-time",
            post(consumers::request_more_time),
        )
        .route(
            "/ui/retirements/{id}/approve-erasure",
            post(emergency::approve),
        )
        .route("/ui/retirements/{id}/lift", post(emergency::lift))
        .route(
            "/ui/emergency",
            get(emergency::page).post(emergency::declare),
        )
        .route("/ui/certificates", get(certificates::list))
        .route("/ui/certificates/{id}", get(certificates::show))
        .route(
            "/ui/certificates/{id}/envelope.json",
            get(certificates::download),
        )
        .route("/ui/revocations", get(certificates::revocations))
        .route("/ui/audit", get(audit::page))
        .route("/ui/audit/export", get(audit::export))
        .route_layer(middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route(
            "/ui/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/ui/assets/{name}", get(assets::asset))
        .merge(signed_in)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(protective_headers))
}

/// Headers on every console response: the policy, no sniffing, no referrer (addresses
/// name models and retirements), no caching of pages that show data.
async fn protective_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Lets a request with a live session through as its [`ConsoleUser`]; a page asked for
/// without one is sent to sign in (and back after), anything else is refused.
async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let secret = cookie(request.headers(), SESSION_COOKIE);
    let session = match secret.as_deref() {
        Some(secret) => state.services.admin().console_session(secret).await,
        None => Ok(None),
    };
    let session = match session {
        Ok(Some(mut session)) => {
            let from = state
                .client_addresses
                .of(request.extensions(), request.headers());
            session.actor.client_ip = from;
            session
        }
        Ok(None) if request.method() == Method::GET => {
            let back = request
                .uri()
                .path_and_query()
                .map_or("/ui/models", |p| p.as_str());
            let to = format!("/ui/sign-in?next={}", session::encode_next(back));
            return Redirect::to(&to).into_response();
        }
        Ok(None) => {
            return PageError::unauthenticated("sign in first: no live console session")
                .into_response();
        }
        Err(e) => return PageError::from(e).into_response(),
    };
    let secret = secret.unwrap_or_default();
    let user = ConsoleUser {
        csrf: crate::service::csrf_token(&secret),
        secret: std::sync::Arc::new(zeroize::Zeroizing::new(secret)),
        session,
    };
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    request.extensions_mut().insert(user.clone());
    let response = next.run(request).await;
    if let Some(refused) = response.extensions().get::<super::error::RefusedBecause>() {
        super::auth::record_refusal(
            &state,
            user.actor(),
            &format!("{method} {path}"),
            refused.0.clone(),
        )
        .await;
    }
    response
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A console form, accepted only with the session's CSRF token in its `csrf` field.
pub struct Posted<T> {
    pub user: ConsoleUser,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let user = request
            .extensions()
            .get::<ConsoleUser>()
            .cloned()
            .ok_or_else(|| PageError::unauthenticated("sign in first"))?;
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| PageError::invalid("the form is too large or was cut short"))?;
        let csrf: CsrfField = serde_urlencoded::from_bytes(&body)
            .map_err(|_| PageError::invalid("the form could not be read"))?;
        if !crate::service::csrf_matches(&user.secret, &csrf.csrf) {
            return Err(PageError::forbidden(
                "the form's CSRF token does not match this session: reload the page and try again",
            ));
        }
        let form = serde_urlencoded::from_bytes(&body)
            .map_err(|e| PageError::invalid(format!("the form could not be read: {e}")))?;
        Ok(Self { user, form })
    }
}
