//! What every console page shares: the chrome (who is signed in, the navigation, the
//! sign-out form), rendering a template into a response, and errors as pages.

use super::ConsoleUser;
use crate::auth::Actor;
use crate::service::ServiceError;
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// A section of the console: its path, its label, and who may use it.
type Section = (&'static str, &'static str, fn(&Actor) -> bool);

/// The navigation, in the order the header shows it: (path, label, whether the actor
/// may use the page; a section nobody of the role may read is not offered).
const NAV: [Section; 7] = [
    ("/ui/models", "Catalogue", |_| true),
    ("/ui/consumers", "Consumers", |_| true),
    ("/ui/retirements", "Retirements", |_| true),
    ("/ui/calendar", "Calendar", |_| true),
    ("/ui/emergency", "Emergency", |a| {
        crate::service::may_pull_kill_switches(a) || crate::service::may_approve_erasures(a)
    }),
    (
        "/ui/certificates",
        "Certificates",
        crate::service::may_read_certificates,
    ),
    ("/ui/audit", "Audit log", crate::service::may_read_audit),
];

/// The signed-in person and where they are, for the page header.
pub struct Chrome {
    pub actor: Actor,
    pub csrf: String,
    pub current: &'static str,
    pub title: String,
}

pub struct NavItem {
    pub path: &'static str,
    pub label: &'static str,
    pub current: bool,
}

impl Chrome {
    pub fn new(user: &ConsoleUser, current: &'static str, title: impl Into<String>) -> Self {
        Self {
            actor: user.actor().clone(),
            csrf: user.csrf.clone(),
            current,
            title: title.into(),
        }
    }

    pub fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
            .filter(|(_, _, may)| may(&self.actor))
            .map(|&(path, label, _)| NavItem {
                path,
                label,
                current: path == self.current,
            })
            .collect()
    }
}

/// The status of a page that may carry `error`: 422 when it says why a form was not
/// taken (the form comes back with what was typed), 200 otherwise.
pub fn status_with(error: &Option<String>) -> StatusCode {
    if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

/// Renders a page template as `200 text/html`.
pub struct ConsolePage<T: Template>(pub T);

impl<T: Template> IntoResponse for ConsolePage<T> {
    fn into_response(self) -> Response {
        match self.0.render() {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "console page failed to render");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "the page failed to render",
                )
                .into_response()
            }
        }
    }
}

/// An error shown as a page with the API's status and code (`FORBIDDEN`, `NOT_FOUND`…).
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    code: &'a str,
    message: &'a str,
}

impl PageError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// What a form shows when its use case said no: a refusal stays a refusal page
    /// (recorded, 403); any other error becomes the message shown on the form.
    pub fn refusal_or_message(e: ServiceError) -> Result<String, Self> {
        match e {
            ServiceError::Forbidden(m) => Err(Self::forbidden(m)),
            e => Ok(Self::from(e).message().to_owned()),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        Self::from(super::super::ApiError::from(e))
    }
}

impl From<super::super::ApiError> for PageError {
    fn from(api: super::super::ApiError) -> Self {
        Self::new(api.status(), api.code(), api.message().to_owned())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            code: self.code,
            message: &self.message,
        };
        let html = page
            .render()
            .unwrap_or_else(|_| "sunset: the error page failed to render".into());
        let mut response = (self.status, Html(html)).into_response();
        if self.status == StatusCode::FORBIDDEN {
            response
                .extensions_mut()
                .insert(super::super::error::RefusedBecause(self.message.clone()));
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }
}
