//! Brownouts as enforcement points learn them, like the kill switch: a list to poll
//! (`GET /v1/brownouts`, with an ETag), a GraphQL subscription (`brownoutsChanged`)
//! and a push: on each claimed retirement check, a retirement whose part of the list
//! changed since enforcement points were last told (scheduled with windows, a dependent
//! acknowledged or was found, the retirement ended) sends every point with a webhook a
//! signed `model.versions.brownouts` notice through the outbox, in one transaction with
//! the record of what was told. A gateway in front of the model's serving refuses the
//! listed consumers in each window, as sunset refuses their downloads.

use super::check::MAX_PENDING;
use crate::domain::{Channel, OutboxNotice, Retirement, RetirementId, Version};
use crate::service::ServiceError;
use crate::store::brownouts as repo;
use crate::store::retirements as retirements_repo;
use chrono::{DateTime, Utc};
use notifiers::NoticeKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// One brownout window still to come, and whom a gateway refuses in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrownoutEntry {
    pub retirement: RetirementId,
    pub model: String,
    pub versions: Vec<Version>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The dependents that have not acknowledged (nor been overridden), by name.
    pub refused: Vec<String>,
}

/// The list as served, and its ETag (a strong one, over the exact bytes).
pub fn brownout_document(list: &[BrownoutEntry]) -> (Vec<u8>, String) {
    use sha2::Digest;
    let body = serde_json::to_vec(&serde_json::json!({ "brownouts": list }))
        .unwrap_or_else(|_| b"{\"brownouts\":[]}".to_vec());
    let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&body)[..16]));
    (body, etag)
}

impl crate::service::Retirements<'_> {
    /// Every brownout window not yet over, of every pending retirement, in time order.
    pub async fn brownouts(&self) -> Result<Vec<BrownoutEntry>, ServiceError> {
        let by_retirement = self.brownouts_by_retirement().await?;
        let mut list: Vec<BrownoutEntry> = by_retirement
            .into_values()
            .flat_map(|p| p.entries)
            .collect();
        list.sort_by_key(|e| (e.start, e.retirement));
        Ok(list)
    }

    /// [`Self::brownouts`] as served, with its ETag.
    pub async fn brownout_list(&self) -> Result<(Vec<u8>, String), ServiceError> {
        Ok(brownout_document(&self.brownouts().await?))
    }

    /// Each pending retirement's windows still to come, by retirement, with the ETag its
    /// push is recorded under.
    async fn brownouts_by_retirement(&self) -> Result<BTreeMap<RetirementId, Part>, ServiceError> {
        let db = self.store().reader();
        let now = self.now();
        let mut out = BTreeMap::new();
        for r in retirements_repo::pending(db, MAX_PENDING).await? {
            if !r.levers.brownouts.iter().any(|w| w.end > now) {
                continue;
            }
            let mut refused: Vec<String> = retirements_repo::dependents(db, r.id)
                .await?
                .into_iter()
                .filter(|d| !d.settled())
                .map(|d| d.consumer)
                .collect();
            refused.sort();
            // Over every window, not only those to come: a window ending is not news to
            // a gateway that holds the list, so it pushes nothing.
            let (_, told_as) = brownout_document(&entries_of(&r, &refused, None));
            let entries = entries_of(&r, &refused, Some(now));
            out.insert(r.id, Part { entries, told_as });
        }
        Ok(out)
    }

    /// Tells enforcement points of every retirement whose brownouts changed since they
    /// were last told; returns how many retirements were pushed. Run on the claimed
    /// retirement check, so once across replicas.
    pub async fn push_brownouts(&self) -> Result<usize, ServiceError> {
        let current = self.brownouts_by_retirement().await?;
        let told = repo::told(self.store().reader()).await?;
        let mut all: Vec<BrownoutEntry> =
            current.values().flat_map(|p| p.entries.clone()).collect();
        all.sort_by_key(|e| (e.start, e.retirement));
        let (_, list_etag) = brownout_document(&all);
        let mut pushed = 0;
        let ids: std::collections::BTreeSet<RetirementId> =
            current.keys().chain(told.keys()).copied().collect();
        for id in ids {
            let entries = current.get(&id).map_or(&[][..], |p| p.entries.as_slice());
            let part = current.get(&id).map(|p| p.told_as.clone());
            if part.as_deref() == told.get(&id).map(String::as_str) {
                continue;
            }
            self.push_one(id, entries, part.as_deref(), &list_etag)
                .await?;
            pushed += 1;
        }
        Ok(pushed)
    }

    /// One retirement's push: a notice to every point with a webhook, and the record of
    /// what they were told (`part`: its entries' ETag; none when nothing is left).
    async fn push_one(
        &self,
        id: RetirementId,
        entries: &[BrownoutEntry],
        part: Option<&str>,
        list_etag: &str,
    ) -> Result<(), ServiceError> {
        let retirement = retirements_repo::find(self.store().reader(), id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no retirement {id}")))?;
        let now = self.now();
        in_write_tx!(self, |tx| {
            let mut notices = Vec::new();
            for (point_id, name) in crate::store::enforcement::points(tx.conn()).await? {
                let Some(point) =
                    crate::store::inventory::consumer_by_id(tx.conn(), point_id).await?
                else {
                    continue;
                };
                if point.webhook_url.is_none() {
                    continue;
                }
                let mut notice = self.decommission().point_notice(
                    NoticeKind::Brownouts,
                    &retirement,
                    &name,
                    list_etag,
                    None,
                    now,
                );
                notice.data.brownouts = entries
                    .iter()
                    .map(|e| notifiers::BrownoutWindow {
                        start: e.start,
                        end: e.end,
                    })
                    .collect();
                notice.data.refused = entries
                    .first()
                    .map(|e| e.refused.clone())
                    .unwrap_or_default();
                notices.push(OutboxNotice::pending(
                    id,
                    Some(point_id),
                    Channel::Webhook,
                    Vec::new(),
                    &notice,
                ));
            }
            crate::store::notices::insert(tx.conn(), &notices).await?;
            repo::set_told(tx.conn(), id, part, now).await?;
            Ok(())
        })?;
        self.wake_delivery();
        Ok(())
    }
}

/// One retirement's part of the list: its windows to come, and the ETag a push of it is
/// recorded under.
struct Part {
    entries: Vec<BrownoutEntry>,
    told_as: String,
}

/// The windows of `r` (those not over at `now`, if given), each refusing `refused`.
fn entries_of(
    r: &Retirement,
    refused: &[String],
    now: Option<DateTime<Utc>>,
) -> Vec<BrownoutEntry> {
    r.levers
        .brownouts
        .iter()
        .filter(|w| now.is_none_or(|now| w.end > now))
        .map(|w| BrownoutEntry {
            retirement: r.id,
            model: r.model.to_string(),
            versions: r.affected_versions.clone(),
            start: w.start,
            end: w.end,
            refused: refused.to_vec(),
        })
        .collect()
}
