//! Tokens for the links in notices: a dependent acknowledges a retirement (or asks for
//! more time) by opening a link, with no login. The token names what it is for, which
//! retirement and which dependent, and until when; an HMAC under a key derived from the
//! service key vouches for all of it, so the database holds nothing that could forge one
//! and a token stays good for exactly one dependent of one retirement.
//!
//! Form: `v1.<base64url(purpose:retirement:dependent:expires)>.<base64url(HMAC-SHA256)>`,
//! the MAC taken over everything before the last dot.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
/// Longer input is refused before any decoding.
const MAX_TOKEN_LEN: usize = 256;

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Acknowledge a retirement notice, or ask for an extension.
    Acknowledge,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Acknowledge => "ack",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        (raw == "ack").then_some(LinkPurpose::Acknowledge)
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub purpose: LinkPurpose,
    pub retirement: i64,
    pub dependent: i64,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token this service issued, or altered: deliberately one error for both.
    #[error("this link is not valid")]
    Invalid,
    #[error("this link expired at {0}; ask for a new notice, or acknowledge through the API")]
    Expired(DateTime<Utc>),
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LinkTokenKey([u8; 32]);

impl LinkTokenKey {
    /// Derives the link key from the service key's seed (domain-separated, one-way).
    pub fn derive(seed: &[u8; 32]) -> Self {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(seed)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"sunset/link-token-key/v1");
        let mut key = [0u8; 32];
        key.copy_from_slice(&mac.finalize().into_bytes());
        Self(key)
    }

    fn mac(&self, signed: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(signed.as_bytes());
        mac
    }

    pub fn issue(&self, claims: &LinkClaims) -> String {
        let payload = format!(
            "{}:{}:{}:{}",
            claims.purpose.as_str(),
            claims.retirement,
            claims.dependent,
            claims.expires_at.timestamp()
        );
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
        let tag = self.mac(&signed).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The claims of `token` if this key issued it for `purpose` and it has not expired
    /// at `now`. The MAC is checked (in constant time) before anything in it is read.
    pub fn verify(
        &self,
        token: &str,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<LinkClaims, LinkError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(LinkError::Invalid);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| LinkError::Invalid)?;
        self.mac(signed)
            .verify_slice(&tag)
            .map_err(|_| LinkError::Invalid)?;
        let payload = signed
            .strip_prefix(VERSION)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(LinkError::Invalid)?;
        let mut fields = payload.split(':');
        let mut next = || fields.next().ok_or(LinkError::Invalid);
        let found = LinkPurpose::parse(next()?).ok_or(LinkError::Invalid)?;
        let retirement = next()?.parse().map_err(|_| LinkError::Invalid)?;
        let dependent = next()?.parse().map_err(|_| LinkError::Invalid)?;
        let expires_at = next()?
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(LinkError::Invalid)?;
        // A link for another purpose is as good as none here.
        if found != purpose {
            return Err(LinkError::Invalid);
        }
        if now >= expires_at {
            return Err(LinkError::Expired(expires_at));
        }
        Ok(LinkClaims {
            purpose: found,
            retirement,
            dependent,
            expires_at,
        })
    }
}

impl std::fmt::Debug for LinkTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTokenKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn claims() -> LinkClaims {
        LinkClaims {
            purpose: LinkPurpose::Acknowledge,
            retirement: 7,
            dependent: 4242,
            expires_at: at("2027-03-01T00:00:00Z"),
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let key = LinkTokenKey::derive(&[1; 32]);
        let token = key.issue(&claims());
        assert!(
            token.starts_with("v1.") && token.len() < MAX_TOKEN_LEN,
            "{token}"
        );
        let now = at("2026-12-01T00:00:00Z");
        assert_eq!(
            key.verify(&token, LinkPurpose::Acknowledge, now),
            Ok(claims())
        );
        assert_eq!(
            key.verify(&token, LinkPurpose::Acknowledge, at("2027-03-01T00:00:00Z")),
            Err(LinkError::Expired(at("2027-03-01T00:00:00Z")))
        );
    }

    #[test]
    fn altered_foreign_and_malformed_tokens_are_refused_alike() {
        let key = LinkTokenKey::derive(&[1; 32]);
        let now = at("2026-12-01T00:00:00Z");
        let token = key.issue(&claims());
        let refused = |t: &str| key.verify(t, LinkPurpose::Acknowledge, now);

        // Another dependent's id, with the original MAC.
        let (_, tag) = token.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("ack:7:4243:1803859200");
        assert_eq!(
            refused(&format!("v1.{forged_payload}.{tag}")),
            Err(LinkError::Invalid)
        );
        // A later expiry, likewise.
        let later = URL_SAFE_NO_PAD.encode("ack:7:4242:1900000000");
        assert_eq!(
            refused(&format!("v1.{later}.{tag}")),
            Err(LinkError::Invalid)
        );
        // Issued under another key.
        let other = LinkTokenKey::derive(&[2; 32]).issue(&claims());
        assert_eq!(refused(&other), Err(LinkError::Invalid));
        for junk in [
            "",
            ".",
            "v1..",
            "v1.x.y",
            "no dots",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(refused(junk), Err(LinkError::Invalid), "{junk:?}");
        }
        // A truncated tag does not verify either.
        assert_eq!(refused(&token[..token.len() - 2]), Err(LinkError::Invalid));
    }

    #[test]
    fn the_key_is_derived_apart_from_the_other_keys_of_the_seed() {
        let seed = [9; 32];
        let link = LinkTokenKey::derive(&seed);
        let audit = crate::audit::AuditMacKey::derive(&seed);
        // The audit key's tag of the same text is not the link's MAC of it.
        let text = "v1.YWNrOjc6NDI0MjoxODAzODU5MjAw";
        let link_tag = hex::encode(link.mac(text).finalize().into_bytes());
        assert_ne!(audit.tag(text), link_tag);
        assert_eq!(format!("{link:?}"), "LinkTokenKey([redacted])");
    }
}
