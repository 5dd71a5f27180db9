//! The headers that tell clients and gateways a version is going away: `Deprecation`
//! (RFC 9745: a structured-field date, `@` and Unix seconds), `Sunset` (RFC 8594: an
//! HTTP date) and `Link`s to the notice (relations `deprecation` and `sunset`).
//! Downloads and the version status endpoint carry them while a retirement is pending.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};

impl SunsetNotice {
    /// The headers' facts for a pending retirement, linking to it over the API.
    pub(crate) fn of(r: &crate::domain::Retirement, link: String) -> Self {
        Self {
            deprecated_at: r.created_at,
            sunset_at: r.effective_at,
            link,
        }
    }
}

/// What a response says about a version's retirement.
#[derive(Debug, Clone)]
pub(crate) struct SunsetNotice {
    /// When the version was deprecated (the retirement was scheduled).
    pub deprecated_at: DateTime<Utc>,
    /// When it stops being served (the retirement's effective time).
    pub sunset_at: DateTime<Utc>,
    /// A page that explains the retirement.
    pub link: String,
}

impl SunsetNotice {
    /// Adds the headers to `headers`. A link that cannot be a header value (it never
    /// should: the service builds it) is left out rather than sent broken.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        let deprecation = format!("@{}", self.deprecated_at.timestamp());
        let sunset = self
            .sunset_at
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        for (name, value) in [
            (HeaderName::from_static("deprecation"), deprecation),
            (HeaderName::from_static("sunset"), sunset),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        for rel in ["deprecation", "sunset"] {
            let link = format!("<{}>; rel=\"{rel}\"; type=\"application/json\"", self.link);
            if let Ok(v) = HeaderValue::from_str(&link) {
                headers.append(axum::http::header::LINK, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_headers_follow_rfc_9745_and_rfc_8594() {
        let notice = SunsetNotice {
            deprecated_at: at("2026-12-01T10:00:00Z"),
            sunset_at: at("2027-03-01T09:30:00Z"),
            link: "https://sunset.example/v1/retirements/7".into(),
        };
        let mut headers = HeaderMap::new();
        notice.apply(&mut headers);
        assert_eq!(headers["deprecation"], "@1796119200");
        assert_eq!(headers["sunset"], "Mon, 01 Mar 2027 09:30:00 GMT");
        let links: Vec<_> = headers
            .get_all("link")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            links,
            [
                "<https://sunset.example/v1/retirements/7>; rel=\"deprecation\"; type=\"application/json\"",
                "<https://sunset.example/v1/retirements/7>; rel=\"sunset\"; type=\"application/json\"",
            ]
        );

        // A link with a line break in it is left out, never sent.
        let mut headers = HeaderMap::new();
        SunsetNotice {
            link: "https://x/\r\nSet-Cookie: a=b".into(),
            ..notice
        }
        .apply(&mut headers);
        assert!(headers.get("link").is_none());
        assert!(headers.get("sunset").is_some());
    }
}
