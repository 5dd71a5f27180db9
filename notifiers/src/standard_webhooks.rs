//! Standard Webhooks (standardwebhooks.com): the signature scheme of the registration
//! webhooks sunset receives and of the notices it sends.
//!
//! A message carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` over
//! `{id}.{timestamp}.{body}`, keyed with the secret, which is written `whsec_<base64>`.
//! Several signatures may be present while a sender rotates its secret; one valid
//! signature is enough. Comparison is in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";
/// Bounds what a sender may put in the headers.
const MAX_ID_LEN: usize = 128;
const MAX_SIGNATURES: usize = 8;

/// A signing secret, decoded.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Parses `whsec_<base64>` (the prefix is optional, as the specification allows).
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let b64 = raw.strip_prefix(SECRET_PREFIX).unwrap_or(raw);
        let bytes = STANDARD.decode(b64).map_err(|_| WebhookError::BadSecret)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(WebhookError::BadSecret);
        }
        Ok(Self(Zeroizing::new(bytes)))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing or malformed header {0}")]
    Header(&'static str),
    #[error("the webhook timestamp is {0} s away from now, outside the accepted window of {1} s")]
    Stale(i64, u64),
    #[error("no signature matches a known source's secret")]
    Signature,
    #[error("a webhook secret must be whsec_ followed by base64 of 24 to 64 bytes")]
    BadSecret,
}

/// The three headers, as received.
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A message whose headers parsed and whose time is within the window.
pub struct Message<'a> {
    pub id: &'a str,
    timestamp: &'a str,
    signatures: Vec<Vec<u8>>,
}

impl<'a> Message<'a> {
    /// Checks the headers' shape and the timestamp against `now` (replay protection).
    pub fn parse(
        h: &Headers<'a>,
        now: DateTime<Utc>,
        tolerance_secs: u64,
    ) -> Result<Self, WebhookError> {
        let id =
            h.id.filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN && id.is_ascii())
                .ok_or(WebhookError::Header("webhook-id"))?;
        let timestamp = h
            .timestamp
            .ok_or(WebhookError::Header("webhook-timestamp"))?;
        let seconds: i64 = timestamp
            .parse()
            .map_err(|_| WebhookError::Header("webhook-timestamp"))?;
        let skew = now.timestamp().saturating_sub(seconds);
        if skew.unsigned_abs() > tolerance_secs {
            return Err(WebhookError::Stale(skew, tolerance_secs));
        }
        let raw = h
            .signature
            .ok_or(WebhookError::Header("webhook-signature"))?;
        let signatures: Vec<Vec<u8>> = raw
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .take(MAX_SIGNATURES)
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect();
        if signatures.is_empty() {
            return Err(WebhookError::Header("webhook-signature"));
        }
        Ok(Self {
            id,
            timestamp,
            signatures,
        })
    }

    /// Whether any signature is a valid HMAC of the body under `secret`. The body is
    /// hashed once per secret, whatever the number of signatures: each signature costs
    /// only the finishing of a copy of that state.
    pub fn verify(&self, secret: &Secret, body: &[u8]) -> bool {
        let over_body = secret.mac(self.id, self.timestamp, body);
        // `verify_slice` compares in constant time.
        self.signatures
            .iter()
            .any(|sig| over_body.clone().verify_slice(sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // The example from the Standard Webhooks specification's reference tests.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(SPEC_TS + 10, 0).unwrap()
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> Headers<'a> {
        Headers {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn the_specification_example_signs_and_verifies() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        assert_eq!(secret.sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
        let ts = SPEC_TS.to_string();
        let m = Message::parse(&headers(SPEC_ID, &ts, SPEC_SIG), now(), 300).unwrap();
        assert!(m.verify(&secret, SPEC_BODY));
        assert!(!m.verify(&secret, br#"{"test": 2432232315}"#));
        let other = Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert!(!m.verify(&other, SPEC_BODY));
    }

    #[test]
    fn one_good_signature_among_several_is_enough() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        let ts = SPEC_TS.to_string();
        let both = format!("v1,bm9wZQ== v2,whatever {SPEC_SIG}");
        let m = Message::parse(&headers(SPEC_ID, &ts, &both), now(), 300).unwrap();
        assert!(m.verify(&secret, SPEC_BODY));
    }

    #[test]
    fn old_future_and_malformed_messages_are_refused() {
        let old = (SPEC_TS - 400).to_string();
        assert!(matches!(
            Message::parse(&headers(SPEC_ID, &old, SPEC_SIG), now(), 300),
            Err(WebhookError::Stale(410, 300))
        ));
        let future = (SPEC_TS + 400).to_string();
        assert!(matches!(
            Message::parse(&headers(SPEC_ID, &future, SPEC_SIG), now(), 300),
            Err(WebhookError::Stale(-390, 300))
        ));
        let ts = SPEC_TS.to_string();
        for (h, name) in [
            (headers("", &ts, SPEC_SIG), "webhook-id"),
            (headers(SPEC_ID, "yesterday", SPEC_SIG), "webhook-timestamp"),
            (headers(SPEC_ID, &ts, "v2,abc"), "webhook-signature"),
        ] {
            assert_eq!(
                Message::parse(&h, now(), 300).err(),
                Some(WebhookError::Header(name))
            );
        }
        assert_eq!(
            Secret::parse("whsec_short").unwrap_err(),
            WebhookError::BadSecret
        );
    }
}
