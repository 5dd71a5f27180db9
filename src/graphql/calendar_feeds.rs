//! Secret calendar addresses: any role makes, lists and revokes its own.

use super::guard::{ANY_ROLE, RoleGuard, actor, services};
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// A calendar feed: `GET /v1/calendars/{secret}.ics` serves the retirement calendar to a
/// calendar application, which cannot send a bearer token.
#[derive(SimpleObject)]
pub struct CalendarFeed {
    id: ID,
    name: String,
    created_by: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<crate::service::CalendarFeed> for CalendarFeed {
    fn from(f: crate::service::CalendarFeed) -> Self {
        Self {
            id: ID(f.id.to_string()),
            name: f.name,
            created_by: f.created_by,
            created_at: f.created_at,
            revoked_at: f.revoked_at,
        }
    }
}

/// A feed just made: its address holds its secret and is shown this once.
#[derive(SimpleObject)]
pub struct CreatedCalendarFeed {
    feed: CalendarFeed,
    url: String,
}

#[derive(Default)]
pub struct CalendarFeedQuery;

#[Object]
impl CalendarFeedQuery {
    /// Your calendar feeds (an admin's: every feed), newest first.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn calendar_feeds(&self, ctx: &Context<'_>) -> Result<Vec<CalendarFeed>> {
        Ok(services(ctx)?
            .retirements()
            .calendar_feeds(actor(ctx)?)
            .await?
            .into_iter()
            .map(CalendarFeed::from)
            .collect())
    }
}

#[derive(Default)]
pub struct CalendarFeedMutation;

#[Object]
impl CalendarFeedMutation {
    /// Makes a secret address for the retirement calendar; the `url` is shown once.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn create_calendar_feed(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<CreatedCalendarFeed> {
        let made = services(ctx)?
            .retirements()
            .create_calendar_feed(actor(ctx)?, &name)
            .await?;
        Ok(CreatedCalendarFeed {
            feed: made.feed.into(),
            url: made.url.as_str().to_owned(),
        })
    }

    /// Revokes one of your calendar feeds (an admin: any); its address stops answering.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn revoke_calendar_feed(&self, ctx: &Context<'_>, id: ID) -> Result<CalendarFeed> {
        let id: i64 = id
            .parse()
            .map_err(|_| super::error::validation("id must be a calendar feed's number"))?;
        Ok(services(ctx)?
            .retirements()
            .revoke_calendar_feed(actor(ctx)?, id)
            .await?
            .into())
    }
}
