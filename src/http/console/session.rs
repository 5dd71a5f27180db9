//! Signing in and out. The sign-in form is guarded against login CSRF by a nonce in a
//! short-lived SameSite=Strict cookie that the form must echo; the token travels in the
//! form's body only (never a URL), and a wrong one is answered without saying why.

use super::{ConsolePage, ConsoleUser, PageError, Posted, SESSION_COOKIE, cookie};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use base64::Engine;
use rand::Rng;
use serde::Deserialize;

const NONCE_COOKIE: &str = "sunset_signin";
const NONCE_SECS: u32 = 600;

/// How the console's cookies are set: Secure when people reach it over TLS.
#[derive(Clone, Copy)]
pub struct CookiePolicy {
    /// `notifications.public_url` is `https://…`.
    pub public_https: bool,
}

impl CookiePolicy {
    fn secure(&self, headers: &HeaderMap) -> bool {
        self.public_https
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }

    fn cookie(
        &self,
        headers: &HeaderMap,
        name: &str,
        value: &str,
        path: &str,
        secs: i64,
    ) -> HeaderValue {
        let secure = if self.secure(headers) { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={secs}; HttpOnly; SameSite=Strict{secure}"
        ))
        .expect("cookie values are URL-safe base64")
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    nonce: &'a str,
    next: &'a str,
    failed: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `GET /ui/sign-in`: the form, with a fresh nonce cookie.
pub async fn sign_in_page(
    Extension(policy): Extension<CookiePolicy>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref().unwrap_or_default());
    render_sign_in(&policy, &headers, next, None, StatusCode::OK)
}

fn render_sign_in(
    policy: &CookiePolicy,
    headers: &HeaderMap,
    next: &str,
    failed: Option<&str>,
    status: StatusCode,
) -> Response {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let page = ConsolePage(SignInPage {
        nonce: &nonce,
        next,
        failed,
    });
    let mut response = (status, page).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        policy.cookie(
            headers,
            NONCE_COOKIE,
            &nonce,
            "/ui/sign-in",
            NONCE_SECS.into(),
        ),
    );
    response
}

/// `POST /ui/sign-in`: exchanges a token for a session cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(policy): Extension<CookiePolicy>,
    crate::http::ClientIp(from): crate::http::ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    let next = safe_next(&form.next);
    let nonce = cookie(&headers, NONCE_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !crate::auth::hashes_equal(&nonce, &form.csrf) {
        return Ok(render_sign_in(
            &policy,
            &headers,
            next,
            Some("The sign-in form expired or did not come from this console. Try again."),
            StatusCode::FORBIDDEN,
        ));
    }
    let Some((secret, session)) = state
        .services
        .admin()
        .sign_in(form.token.trim(), from)
        .await?
    else {
        return Ok(render_sign_in(
            &policy,
            &headers,
            next,
            Some("That token is unknown or revoked."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    // The cookie lasts as long as the session the service opened.
    let lasts = (session.expires_at - session.opened_at).num_seconds();
    let mut response = Redirect::to(next).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        policy.cookie(&headers, SESSION_COOKIE, secret.expose(), "/ui", lasts),
    );
    cookies.append(
        header::SET_COOKIE,
        policy.cookie(&headers, NONCE_COOKIE, "", "/ui/sign-in", 0),
    );
    Ok(response)
}

/// `POST /ui/sign-out`: ends the session on the server and clears the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(policy): Extension<CookiePolicy>,
    headers: HeaderMap,
    posted: Posted<serde::de::IgnoredAny>,
) -> Result<Response, PageError> {
    let ConsoleUser { session, .. } = posted.user;
    state.services.admin().sign_out(&session).await?;
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        policy.cookie(&headers, SESSION_COOKIE, "", "/ui", 0),
    );
    Ok(response)
}

/// Where to go after signing in: a console path, never another site.
fn safe_next(next: &str) -> &str {
    let console = next.starts_with("/ui/") || next == "/ui";
    if console && !next.starts_with("//") && !next.contains(['\\', '\r', '\n']) && next.len() <= 512
    {
        next
    } else {
        "/ui/models"
    }
}

/// `next` for the sign-in address: percent-encoded.
pub fn encode_next(path: &str) -> String {
    serde_urlencoded::to_string([("", path)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_console_pages() {
        assert_eq!(safe_next("/ui/models/x?y=1"), "/ui/models/x?y=1");
        for hostile in [
            "https://evil.example/",
            "//evil.example",
            "/ui\\..",
            "/graphql",
            "",
        ] {
            assert_eq!(safe_next(hostile), "/ui/models", "{hostile}");
        }
        assert_eq!(
            encode_next("/ui/models?q=a b&t=1"),
            "%2Fui%2Fmodels%3Fq%3Da+b%26t%3D1"
        );
    }
}
