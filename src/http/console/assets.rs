//! The console's styles and scripts, written for it and embedded in the binary: no CDN,
//! nothing inline (the pages' policy allows neither).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (name, content type, bytes) of every asset.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/console/console.js"),
    ),
    (
        "verify.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/console/verify.js"),
    ),
];

/// `GET /ui/assets/{name}`: static, holds no data, needs no session.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            response
        }
        None => (StatusCode::NOT_FOUND, "no such console asset").into_response(),
    }
}
