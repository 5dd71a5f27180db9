//! Brownouts as enforcement points see them over GraphQL: the list, and a subscription
//! that pushes it again whenever a retirement change (through any instance) alters it.

use super::guard::{ANY_ROLE, RoleGuard, services};
use crate::service::{BrownoutEntry, Services};
use async_graphql::{Context, ID, Object, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;

/// One brownout window still to come.
#[derive(SimpleObject)]
#[graphql(name = "BrownoutEntry")]
pub struct EntryGql {
    retirement_id: ID,
    model: String,
    versions: Vec<String>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The consumers to refuse in it: dependents that have not acknowledged.
    refused: Vec<String>,
}

impl From<BrownoutEntry> for EntryGql {
    fn from(e: BrownoutEntry) -> Self {
        Self {
            retirement_id: ID(e.retirement.to_string()),
            model: e.model,
            versions: e.versions.iter().map(ToString::to_string).collect(),
            start: e.start,
            end: e.end,
            refused: e.refused,
        }
    }
}

/// Every brownout window not yet over, as `GET /v1/brownouts` serves it.
#[derive(SimpleObject)]
pub struct BrownoutList {
    /// The same strong ETag `GET /v1/brownouts` answers with.
    etag: String,
    windows: Vec<EntryGql>,
}

async fn list(services: &Services) -> Result<BrownoutList> {
    let entries = services.retirements().brownouts().await?;
    let (_, etag) = crate::service::brownout_document(&entries);
    Ok(BrownoutList {
        etag,
        windows: entries.into_iter().map(EntryGql::from).collect(),
    })
}

#[derive(Default)]
pub struct BrownoutQuery;

#[Object]
impl BrownoutQuery {
    /// Every brownout window not yet over, of every pending retirement, with the
    /// consumers a gateway refuses in each.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn brownouts(&self, ctx: &Context<'_>) -> Result<BrownoutList> {
        list(services(ctx)?).await
    }
}

#[derive(Default)]
pub struct BrownoutSubscription;

#[Subscription]
impl BrownoutSubscription {
    /// The brownout list: now, then again each time a retirement change made through
    /// any instance alters it (a new ETag).
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn brownouts_changed(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = BrownoutList> + use<>> {
        let services = services(ctx)?.clone();
        let events = services.retirements().retirement_events();
        Ok(futures_util::stream::unfold(
            (services, events, None::<String>),
            |(services, mut events, last)| async move {
                loop {
                    if last.is_some() {
                        match events.recv().await {
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                    let now = list(&services).await.ok()?;
                    if last.as_deref() == Some(now.etag.as_str()) {
                        continue;
                    }
                    let etag = now.etag.clone();
                    return Some((now, (services, events, Some(etag))));
                }
            },
        ))
    }
}
