//! The no-login acknowledgement pages behind the links in notices. The token in the path
//! is the only credential (an expiring HMAC over purpose, retirement and dependent), so
//! the pages are never cached, never leak it as a referrer, and load nothing from
//! elsewhere. Opening the link (GET) only shows the notice: mail scanners prefetch links,
//! and a prefetch must not acknowledge anything. The button POSTs.

use super::{ApiError, AppState};
use crate::domain::ConsumerId;
use crate::domain::RetirementId;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// Headers every page carries: the URL holds a credential.
const HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
];

pub async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let services = &state.services;
    let page = async {
        let claims = services.retirements().link_claims(&token).await?;
        let retirement = services.retirements().retirement(RetirementId(claims.retirement)).await?;
        let dependent = services
            .retirements().retirement_dependent(RetirementId(claims.retirement), ConsumerId(claims.dependent))
            .await?;

        let status = match dependent.acknowledged_at {
            Some(at) => format!("<p>Acknowledged on {}.</p>", escape(&at.to_rfc3339())),
            None if retirement.state.is_pending() => format!(
                "<form method=\"post\"><button type=\"submit\">Acknowledge</button></form>\
                 <h2>Need more time?</h2>\
                 <form method=\"post\" action=\"{}/extension\">\
                 <label>Until (YYYY-MM-DD) <input name=\"until\" required pattern=\"\\d{{4}}-\\d{{2}}-\\d{{2}}\"></label>\
                 <label>Why <textarea name=\"reason\" required minlength=\"10\" maxlength=\"4000\"></textarea></label>\
                 <button type=\"submit\">Ask for an extension</button></form>",
                escape(&token)
            ),
            None => format!("<p>This retirement is {}.</p>", retirement.state),
        };
        Ok::<_, crate::service::ServiceError>(format!(
            "<p><strong>{}</strong> depends on <strong>{} {}</strong>, which retires on {}.</p>\
             <p>Reason: {}</p><p>Your notice period ends on {}.</p>{status}",
            escape(&dependent.consumer),
            escape(retirement.model.as_str()),
            escape(&retirement.selection.to_string()),
            escape(&retirement.effective_at.to_rfc3339()),
            escape(&retirement.reason),
            escape(&dependent.notice_ends_at.to_rfc3339()),
        ))
    }
    .await;
    respond(page)
}

pub async fn acknowledge(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let done = state
        .services
        .retirements()
        .acknowledge_by_link(&token)
        .await
        .map(|d| {
            format!(
                "<p>Thank you: {} has acknowledged the retirement{}.</p>",
                escape(&d.consumer),
                d.acknowledged_at
                    .map(|at| format!(" (recorded {})", escape(&at.to_rfc3339())))
                    .unwrap_or_default()
            )
        });
    respond(done)
}

/// The extension form of the page.
#[derive(serde::Deserialize)]
pub struct ExtensionForm {
    until: String,
    reason: String,
}

pub async fn request_extension(
    State(state): State<AppState>,
    Path(token): Path<String>,
    axum::Form(form): axum::Form<ExtensionForm>,
) -> Response {
    let services = &state.services;
    let asked = async {
        let claims = services.retirements().link_claims(&token).await?;
        let until = chrono::NaiveDate::parse_from_str(form.until.trim(), "%Y-%m-%d")
            .map_err(|_| {
                crate::domain::ParseError::new("until", "must be a date written YYYY-MM-DD")
            })?
            .and_hms_opt(23, 59, 59)
            .map(|t| t.and_utc())
            .ok_or_else(|| crate::domain::ParseError::new("until", "is not a valid date"))?;
        let d = services
            .retirements()
            .request_extension(
                crate::service::Requester::Link(&token),
                RetirementId(claims.retirement),
                until,
                &form.reason,
            )
            .await?;
        Ok(format!(
            "<p>Your request for {} to have until {} has been sent to governance.</p>",
            escape(&d.consumer),
            escape(&until.to_rfc3339())
        ))
    }
    .await;
    respond(asked)
}

fn respond(body: Result<String, crate::service::ServiceError>) -> Response {
    match body {
        Ok(body) => (
            HEADERS,
            Html(format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>sunset: retirement notice</title></head><body>{body}</body></html>"
            )),
        )
            .into_response(),
        Err(e) => (HEADERS, ApiError::from(e)).into_response(),
    }
}

/// HTML-escapes text for element content and quoted attributes.
fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            super::escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
