//! Certificates for auditors: the list, and a viewer that shows every field of a
//! destruction certificate and verifies its DSSE signature in the browser (WebCrypto
//! Ed25519, `assets/console/verify.js`) against a public key the auditor pastes, so the
//! verdict does not rest on this server's word. The signed revocation list is viewed the
//! same way. Reading a certificate is recorded, as through the API.

use super::{Chrome, ConsolePage, ConsoleUser, PageError};
use crate::http::AppState;
use crate::service::CertificateView;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

#[derive(Template)]
#[template(path = "console/certificates.html")]
struct ListPage {
    chrome: Chrome,
    certificates: Vec<CertificateView>,
}

/// `GET /ui/certificates`.
pub async fn list(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    let certificates = state
        .services
        .decommission()
        .certificates(user.actor())
        .await?;
    Ok(ConsolePage(ListPage {
        chrome: Chrome::new(&user, "/ui/certificates", "Destruction certificates"),
        certificates,
    })
    .into_response())
}

/// An envelope's fields as a person reads them.
struct Fields {
    payload_type: String,
    /// The payload decoded and indented, when it is JSON.
    payload: String,
    keyids: Vec<String>,
}

fn fields(envelope: &str) -> Fields {
    let parsed: serde_json::Value = serde_json::from_str(envelope).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(text(&parsed["payload"]))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .unwrap_or_else(|| "(the payload is not base64 JSON)".into());
    Fields {
        payload_type: text(&parsed["payloadType"]),
        payload,
        keyids: parsed["signatures"]
            .as_array()
            .map(|s| s.iter().map(|s| text(&s["keyid"])).collect())
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "console/envelope.html")]
struct EnvelopePage {
    chrome: Chrome,
    what: String,
    envelope: String,
    fields: Fields,
    sha256: Option<String>,
    download: String,
    service_key: String,
}

impl EnvelopePage {
    /// The viewer of `envelope` (`what` it is, where to `download` it), its fields read out.
    fn of(
        state: &AppState,
        chrome: Chrome,
        what: String,
        download: String,
        envelope: String,
    ) -> Self {
        Self {
            chrome,
            what,
            fields: fields(&envelope),
            sha256: None,
            download,
            service_key: state.services.service_key().public_key_pem(),
            envelope,
        }
    }
}

/// `GET /ui/certificates/{id}`: the viewer.
pub async fn show(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let c = state
        .services
        .decommission()
        .certificate(user.actor(), id)
        .await?;
    Ok(ConsolePage(EnvelopePage {
        chrome: Chrome::new(&user, "/ui/certificates", format!("Certificate {id}")),
        what: format!(
            "destruction certificate {id} of retirement {}",
            c.retirement_id
        ),
        fields: fields(&c.envelope),
        sha256: Some(c.sha256),
        download: format!("/ui/certificates/{id}/envelope.json"),
        service_key: state.services.service_key().public_key_pem(),
        envelope: c.envelope,
    })
    .into_response())
}

/// `GET /ui/certificates/{id}/envelope.json`: the envelope exactly as issued.
pub async fn download(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let c = state
        .services
        .decommission()
        .certificate(user.actor(), id)
        .await?;
    let name = format!("attachment; filename=\"sunset-certificate-{id}.dsse.json\"");
    let mut response = c.envelope.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, crate::http::decommission::ENVELOPE);
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `GET /ui/revocations`: the signed revocation list in the same viewer.
pub async fn revocations(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    let envelope = state.services.decommission().revocation_list().await?;
    let page = EnvelopePage::of(
        &state,
        Chrome::new(&user, "/ui/certificates", "Revocation list"),
        "the signed revocation list".into(),
        "/v1/revocations".into(),
        envelope,
    );
    Ok(ConsolePage(page).into_response())
}
