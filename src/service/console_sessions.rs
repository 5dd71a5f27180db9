//! Console sessions: a person signs in to `/ui` by presenting an API token once and gets
//! a session that acts as that token (same role, same audit identity) until it expires,
//! its holder signs out, or the token is revoked. The session's secret (256 random
//! bits) lives only in the holder's cookie; the database keeps its SHA-256. The CSRF
//! token every console form carries is an HMAC of that secret, so it needs no storage
//! and cannot be computed by a page that cannot read the cookie.

use super::ServiceError;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::{Actor, hash_token};
use crate::domain::TokenName;
use crate::store::console_sessions as repo;
use base64::Engine;
use hmac::{KeyInit, Mac};
use rand::Rng;
use serde::Serialize;
use zeroize::Zeroizing;

/// Longest secret looked up: anything longer is no session of ours.
const MAX_SECRET: usize = 128;

/// The cookie's secret of a session just opened (shown to the browser only).
pub struct SessionSecret(Zeroizing<String>);

impl SessionSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret([redacted])")
    }
}

/// A session a request presented: who it acts as, and what ends it.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub id: i64,
    pub actor: Actor,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionRecord<'a> {
    session: i64,
    expires_at: chrono::DateTime<chrono::Utc>,
    token: &'a str,
}

/// The CSRF token of the session whose cookie holds `secret`.
pub fn csrf_token(secret: &str) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"sunset console csrf v1");
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `presented` is the CSRF token of the session holding `secret` (constant time).
pub fn csrf_matches(secret: &str, presented: &str) -> bool {
    crate::auth::hashes_equal(&csrf_token(secret), presented)
}

impl super::Admin<'_> {
    /// Opens a session for the holder of token `presented`; `None` for an unknown or
    /// revoked token (the caller says so without telling which). `from` is the client's
    /// address, for the audit record.
    pub async fn sign_in(
        &self,
        presented: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<Option<(SessionSecret, ConsoleSession)>, ServiceError> {
        let Some(actor) = self.authenticate(presented).await? else {
            tracing::warn!("console sign-in refused: unknown or revoked token");
            return Ok(None);
        };
        let actor = actor.from_address(from);
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        let secret = SessionSecret(Zeroizing::new(format!(
            "ses_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
        )));
        let hash = hash_token(secret.expose());
        let lifetime = self.console_session_lifetime();
        let session = in_write_tx!(self, |tx| {
            let now = self.now();
            repo::prune(tx.conn(), now - chrono::Duration::days(1)).await?;
            let expires_at = now + lifetime;
            let id = repo::insert(tx.conn(), &hash, &actor.name, now, expires_at).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::ConsoleSignedIn,
                SubjectType::ApiToken,
                actor.name.as_str(),
            )
            .after(&SessionRecord {
                session: id,
                expires_at,
                token: &actor.name,
            });
            self.append_audit(tx, now, entry).await?;
            Ok(ConsoleSession {
                id,
                actor: actor.clone(),
                opened_at: now,
                expires_at,
            })
        })?;
        tracing::info!(token = %actor.name, session = session.id, "console sign-in");
        Ok(Some((secret, session)))
    }

    /// The live session whose cookie holds `secret`, acting as its token while the token
    /// is not revoked; `None` otherwise.
    pub async fn console_session(
        &self,
        secret: &str,
    ) -> Result<Option<ConsoleSession>, ServiceError> {
        if secret.len() > MAX_SECRET {
            return Ok(None);
        }
        let db = self.store().reader();
        let Some(live) = repo::find_live(db, &hash_token(secret), self.now()).await? else {
            return Ok(None);
        };
        let Ok(name) = TokenName::parse(&live.token_name) else {
            return Ok(None);
        };
        let token = crate::store::tokens::find_by_name(db, &name).await?;
        Ok(token
            .filter(|t| t.revoked_at.is_none())
            .map(|t| ConsoleSession {
                id: live.id,
                actor: Actor::from_token(&t),
                opened_at: live.created_at,
                expires_at: live.expires_at,
            }))
    }

    /// Ends `session` (signing out): its cookie opens nothing from now on, on any replica.
    pub async fn sign_out(&self, session: &ConsoleSession) -> Result<(), ServiceError> {
        let actor = &session.actor;
        in_write_tx!(self, |tx| {
            let now = self.now();
            if repo::end(tx.conn(), session.id, now).await? {
                let entry = AuditEntry::new(
                    actor.audit_identity(),
                    Action::ConsoleSignedOut,
                    SubjectType::ApiToken,
                    actor.name.as_str(),
                )
                .before(&SessionRecord {
                    session: session.id,
                    expires_at: session.expires_at,
                    token: &actor.name,
                });
                self.append_audit(tx, now, entry).await?;
            }
            Ok(())
        })?;
        tracing::info!(token = %actor.name, session = session.id, "console sign-out");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let token = csrf_token("ses_a");
        assert!(csrf_matches("ses_a", &token));
        assert!(!csrf_matches("ses_b", &token));
        assert!(!csrf_matches("ses_a", ""));
        assert_eq!(token.len(), 64);
    }
}
