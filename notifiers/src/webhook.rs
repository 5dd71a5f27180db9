//! Notices as Standard Webhooks: a JSON POST signed with the receiving consumer's own
//! secret, with the notice id as `webhook-id` so a receiver can drop repeats.

use crate::outbound::{GuardedResolver, OutboundPolicy, blocked_cause};
use crate::standard_webhooks::Secret;
use crate::{Notice, Notifier, Outcome};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Where a consumer takes its notices.
#[derive(Debug)]
pub struct WebhookAddress {
    pub url: String,
    pub secret: Secret,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the webhook client: {0}")]
pub struct ClientError(String);

/// The longest `Retry-After` honoured; a longer one is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

pub struct WebhookNotifier {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl WebhookNotifier {
    /// A client that gives each attempt `timeout` in all, follows no redirects (a
    /// receiver is the URL its owner registered, not wherever that points), trusts
    /// the Mozilla roots, and connects only where `policy` admits (see `outbound`).
    pub fn new(timeout: Duration, policy: OutboundPolicy) -> Result<Self, ClientError> {
        let policy = Arc::new(policy);
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .user_agent(concat!("sunset-notifier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.without_url().to_string()))?;
        Ok(Self { client, policy })
    }
}

impl Notifier for WebhookNotifier {
    type Address = WebhookAddress;

    async fn deliver(&self, notice: &Notice, to: &WebhookAddress, now: DateTime<Utc>) -> Outcome {
        if let Err(blocked) = self.policy.check_url(&to.url) {
            return Outcome::Refused {
                reason: blocked.to_string(),
            };
        }
        let body = notice.to_json();
        let timestamp = now.timestamp();
        let signature = to.secret.sign(notice.id(), timestamp, &body);
        let sent = self
            .client
            .post(&to.url)
            .header("content-type", "application/json")
            .header("webhook-id", notice.id())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => judge(response.status(), response.headers(), now),
            // An address the policy refuses stays refused.
            Err(e) if blocked_cause(&e).is_some() => Outcome::Refused {
                reason: blocked_cause(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            },
            // A URL that cannot even make a request will never make one.
            Err(e) if e.is_builder() => Outcome::Refused {
                reason: format!("the webhook URL is unusable: {}", describe(e)),
            },
            Err(e) => Outcome::Retry {
                reason: describe(e),
                after: None,
            },
        }
    }
}

/// What an answer means, per Standard Webhooks: any 2xx is delivered, 410 means stop
/// sending, anything else is retried.
fn judge(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let reason = format!("the receiver answered HTTP {}", status.as_u16());
    if status == reqwest::StatusCode::GONE {
        return Outcome::Gone { reason };
    }
    let after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, now));
    Outcome::Retry { reason, after }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3), capped.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value)
                .ok()?
                .with_timezone(&Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The error without its URL (which may carry a token its owner put in the query), and
/// with its causes, which say what actually failed (refused, timed out, TLS).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Tue, 01 Dec 2026 00:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Mon, 30 Nov 2026 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }
}
