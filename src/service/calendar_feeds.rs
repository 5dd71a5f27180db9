//! Secret calendar addresses. Calendar applications subscribe to a URL and cannot send a
//! bearer token, so any role may make a feed whose address carries a secret of its own
//! (256 random bits, shown once, stored as SHA-256), list its feeds, and revoke one;
//! an admin sees and revokes every feed. The feed serves what `/v1/retirements.ics` does.

use super::ServiceError;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{ParseError, Role, Text};
use crate::store::calendar_feeds as repo;
pub use crate::store::calendar_feeds::CalendarFeed;
use base64::Engine;
use rand::Rng;
use zeroize::Zeroizing;

const MAX_NAME: usize = 64;

/// A feed just made, with its address (the only time the secret is shown).
pub struct NewCalendarFeed {
    pub feed: CalendarFeed,
    pub url: Zeroizing<String>,
}

impl super::Retirements<'_> {
    pub async fn create_calendar_feed(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<NewCalendarFeed, ServiceError> {
        let name = Text::parse("name", name, MAX_NAME)?;
        if name.as_str().trim().is_empty() {
            return Err(ParseError::new(
                "name",
                "must name the feed (e.g. the calendar it is for)",
            )
            .into());
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        let secret = Zeroizing::new(format!(
            "cal_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
        ));
        let hash = crate::auth::hash_token(&secret);
        let feed = in_write_tx!(self, |tx| {
            let now = self.now();
            let feed = repo::insert(tx.conn(), name.as_str(), &hash, &actor.name, now).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::CalendarFeedCreated,
                SubjectType::ApiToken,
                format!("calendar-feed:{}", feed.id),
            )
            .after(&feed);
            self.append_audit(tx, now, entry).await?;
            Ok(feed)
        })?;
        let url = Zeroizing::new(format!(
            "{}/v1/calendars/{}.ics",
            self.public_url(),
            secret.as_str()
        ));
        Ok(NewCalendarFeed { feed, url })
    }

    /// The actor's feeds (an admin's: every feed), newest first.
    pub async fn calendar_feeds(&self, actor: &Actor) -> Result<Vec<CalendarFeed>, ServiceError> {
        let mine = (actor.role != Role::Admin).then_some(actor.name.as_str());
        Ok(repo::list(self.store().reader(), mine).await?)
    }

    /// Revokes a feed: its address answers 404 from now on. Its maker or an admin.
    pub async fn revoke_calendar_feed(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<CalendarFeed, ServiceError> {
        in_write_tx!(self, |tx| {
            let now = self.now();
            let before = repo::find(tx.conn(), id)
                .await?
                .filter(|f| actor.role == Role::Admin || f.created_by == actor.name)
                .ok_or_else(|| ServiceError::NotFound(format!("you have no calendar feed {id}")))?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            repo::revoke(tx.conn(), id, now).await?;
            let after = CalendarFeed {
                revoked_at: Some(now),
                ..before.clone()
            };
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::CalendarFeedRevoked,
                SubjectType::ApiToken,
                format!("calendar-feed:{id}"),
            )
            .before(&before)
            .after(&after);
            self.append_audit(tx, now, entry).await?;
            Ok(after)
        })
    }

    /// The live feed a secret opens. Unknown and revoked secrets get the same answer.
    pub async fn calendar_feed_by_secret(
        &self,
        secret: &str,
    ) -> Result<CalendarFeed, ServiceError> {
        let unknown =
            || ServiceError::NotFound("no such calendar feed (unknown or revoked)".into());
        if !secret.starts_with("cal_") || secret.len() > 64 {
            return Err(unknown());
        }
        repo::by_secret(self.store().reader(), &crate::auth::hash_token(secret))
            .await?
            .filter(|f| f.revoked_at.is_none())
            .ok_or_else(unknown)
    }
}
