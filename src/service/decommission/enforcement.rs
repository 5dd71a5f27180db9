//! Enforcement points: gateways an admin registered as consumers of kind
//! `gateway`. Every kill switch tells each of them, in the kill switch's own
//! transaction: a `model.versions.disabled` notice through the outbox (a Standard
//! Webhooks POST signed with the point's secret, retried like any notice) carrying the
//! disabled list's new ETag. A point confirms by a signed acknowledgement
//! (`POST /v1/enforcement/confirmations`) or by polling `GET /v1/disabled-versions` with
//! a token bound to it, and getting that list. The time each confirmed is recorded; a
//! point still silent after `retirement.enforcement_confirm_secs` is escalated to
//! governance, and the certificate names it.

use super::{ServiceError, Services};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::DecommissionStep;
use crate::domain::DisabledVersion;
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::domain::{Channel, OutboxNotice};
use crate::domain::{ConsumerKind, ConsumerName, ParseError};
use crate::store::enforcement as repo;
pub use crate::store::enforcement::Confirmation;
use crate::store::inventory as inventory_repo;
use crate::store::kill_switch as switch_repo;
use crate::store::notices as notice_repo;
use chrono::{DateTime, Utc};
use notifiers::standard_webhooks::{Headers, Message, Secret};
use notifiers::{Notice, NoticeData, NoticeKind};
use serde::Deserialize;

/// Where points send their signed confirmations.
pub const CONFIRMATIONS_PATH: &str = "/v1/enforcement/confirmations";
/// The largest confirmation body accepted.
pub const MAX_CONFIRMATION_BYTES: usize = 4096;
/// How far a confirmation's timestamp may be from now (replay protection).
const CONFIRMATION_TOLERANCE_SECS: u64 = 300;

/// The body of a signed confirmation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmationBody {
    /// The enforcement point's consumer name.
    point: String,
    /// The disabled list's ETag it has applied.
    etag: String,
}

/// The disabled list as served, and its ETag (a strong one, over the exact bytes).
pub(crate) fn disabled_document(list: &[DisabledVersion]) -> (Vec<u8>, String) {
    use sha2::Digest;
    let body = serde_json::to_vec(&serde_json::json!({ "disabled": list }))
        .unwrap_or_else(|_| b"{\"disabled\":[]}".to_vec());
    let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&body)[..16]));
    (body, etag)
}

impl crate::service::Decommission<'_> {
    /// The disabled list as served to enforcement points, and its ETag.
    pub async fn disabled_list(&self) -> Result<(Vec<u8>, String), ServiceError> {
        Ok(disabled_document(
            &switch_repo::list(self.store().reader()).await?,
        ))
    }

    /// The disabled versions and the ETag of the list they make, from one read.
    pub async fn disabled_versions_tagged(
        &self,
    ) -> Result<(Vec<DisabledVersion>, String), ServiceError> {
        let list = switch_repo::list(self.store().reader()).await?;
        let (_, etag) = disabled_document(&list);
        Ok((list, etag))
    }

    /// The disabled list's ETag as this instance knows it, changing whenever the list
    /// does (through any instance): what the `disabledVersionsChanged` subscription follows.
    pub fn kill_switch_changes(&self) -> tokio::sync::watch::Receiver<String> {
        self.inner.decommission.kill_switch.subscribe()
    }

    /// Reads the disabled list and publishes its ETag if it changed; returns it.
    pub(crate) async fn publish_kill_switch(&self) -> Result<String, ServiceError> {
        let (_, etag) = self.disabled_list().await?;
        self.inner
            .decommission
            .kill_switch
            .send_if_modified(|known| {
                if *known == etag {
                    false
                } else {
                    known.clone_from(&etag);
                    true
                }
            });
        Ok(etag)
    }

    /// Tells every enforcement point of a kill switch, inside its transaction: a record
    /// to confirm, and a signed notice for those with a webhook.
    pub(super) async fn tell_enforcement_points(
        &self,
        tx: &mut crate::store::WriteTx,
        retirement: &Retirement,
        now: DateTime<Utc>,
    ) -> Result<Vec<Confirmation>, ServiceError> {
        let (_, etag) = disabled_document(&switch_repo::list(tx.conn()).await?);
        let mut told = Vec::new();
        let mut notices = Vec::new();
        for (id, name) in repo::points(tx.conn()).await? {
            let Some(point) = inventory_repo::consumer_by_id(tx.conn(), id).await? else {
                continue;
            };
            told.push(Confirmation {
                retirement_id: retirement.id,
                consumer_id: id,
                point: name.clone(),
                told_at: now,
                etag: etag.clone(),
                confirmed_at: None,
                via: None,
                escalated_at: None,
            });
            if point.webhook_url.is_some() {
                let notice =
                    self.point_notice(NoticeKind::Disabled, retirement, &name, &etag, None, now);
                notices.push(OutboxNotice::pending(
                    retirement.id,
                    Some(id),
                    Channel::Webhook,
                    Vec::new(),
                    &notice,
                ));
            }
        }
        repo::told(tx.conn(), &told).await?;
        notice_repo::insert(tx.conn(), &notices).await?;
        Ok(told)
    }

    pub(crate) fn point_notice(
        &self,
        kind: NoticeKind,
        retirement: &Retirement,
        point: &str,
        etag: &str,
        problem: Option<String>,
        now: DateTime<Utc>,
    ) -> Notice {
        Notice {
            kind,
            timestamp: now,
            data: NoticeData {
                notice_id: super::super::retirements::new_notice_id(),
                retirement_id: retirement.id.to_string(),
                model: retirement.model.to_string(),
                versions: retirement.selection.to_string(),
                affected_versions: retirement
                    .affected_versions
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                reason: retirement.reason.clone(),
                effective_at: retirement.effective_at,
                replacement: None,
                dependent: point.to_owned(),
                notice_ends_at: now,
                acknowledge_url: format!("{}{CONFIRMATIONS_PATH}", self.retirements().public_url()),
                problem,
                etag: Some(etag.to_owned()),
                closed_to_new_consumers: false,
                brownouts: Vec::new(),
                refused: Vec::new(),
            },
        }
    }

    /// A poll of the disabled list by `actor`: when it is a token bound to an
    /// enforcement point, the point now holds every version disabled so far, so each
    /// kill switch it was told of is confirmed.
    pub async fn note_enforcement_poll(&self, actor: &Actor) -> Result<u64, ServiceError> {
        let Some(name) = &actor.consumer else {
            return Ok(0);
        };
        self.confirm_point(name, None, "poll").await
    }

    /// A signed confirmation from an enforcement point (Standard Webhooks, signed with the
    /// point's own secret): `{"point": name, "etag": "…"}`. Returns how many kill switches
    /// it confirmed.
    pub async fn confirm_enforcement(
        &self,
        headers: &Headers<'_>,
        body: &[u8],
    ) -> Result<u64, ServiceError> {
        if body.len() > MAX_CONFIRMATION_BYTES {
            return Err(ParseError::new(
                "confirmation",
                format!("is larger than {MAX_CONFIRMATION_BYTES} bytes"),
            )
            .into());
        }
        let refused =
            || ServiceError::Forbidden("the confirmation's signature does not verify".into());
        let message = Message::parse(headers, self.now(), CONFIRMATION_TOLERANCE_SECS)
            .map_err(|e| ServiceError::Forbidden(format!("the confirmation is refused: {e}")))?;
        let parsed: ConfirmationBody = serde_json::from_slice(body).map_err(|e| {
            ParseError::new(
                "confirmation",
                format!("is not {{\"point\", \"etag\"}} JSON: {e}"),
            )
        })?;
        let name = ConsumerName::parse(&parsed.point)?;
        let db = self.store().reader();
        let (id, point) = inventory_repo::find_consumer(db, &name)
            .await?
            .filter(|(_, c)| c.kind == ConsumerKind::Gateway)
            .ok_or_else(refused)?;
        let sealed = inventory_repo::consumer_secret(db, id)
            .await?
            .ok_or_else(refused)?;
        let opened = self
            .service_key()
            .secret_sealer()
            .open(
                &super::super::inventory::secret_binding(&point.name),
                &sealed,
            )
            .map_err(|_| refused())?;
        let secret = std::str::from_utf8(&opened)
            .ok()
            .and_then(|s| Secret::parse(s).ok())
            .ok_or_else(refused)?;
        if !message.verify(&secret, body) {
            return Err(refused());
        }
        self.confirm_point(&name, Some(&parsed.etag), "webhook")
            .await
    }

    /// Confirms the kill switches point `name` was told of: all so far (a poll), or
    /// those up to the one that carried `etag`.
    async fn confirm_point(
        &self,
        name: &ConsumerName,
        etag: Option<&str>,
        via: &str,
    ) -> Result<u64, ServiceError> {
        let db = self.store().reader();
        let Some((id, point)) = inventory_repo::find_consumer(db, name).await? else {
            return Ok(0);
        };
        if point.kind != ConsumerKind::Gateway {
            return Ok(0);
        }
        let now = self.now();
        let told_by = match etag {
            None => now,
            Some(etag) => repo::told_at_with_etag(db, id, etag)
                .await?
                .ok_or_else(|| {
                    ServiceError::NotFound(format!(
                        "{name} was never told of a disabled list with ETag {etag}"
                    ))
                })?,
        };
        if !repo::has_unconfirmed(db, id, told_by).await? {
            return Ok(0);
        }
        let confirmed = in_write_tx!(self, |tx| {
            let n = repo::confirm(tx.conn(), id, told_by, now, via).await?;
            if n > 0 {
                let entry = AuditEntry::new(
                    (name.as_str(), "gateway"),
                    Action::EnforcementConfirmed,
                    SubjectType::Consumer,
                    name.to_string(),
                )
                .after(&serde_json::json!({ "via": via, "killSwitches": n, "etag": etag }));
                self.append_audit(tx, now, entry).await?;
            }
            Ok(n)
        })?;
        if confirmed > 0 {
            tracing::info!(point = %name, via, confirmed, "enforcement point confirmed");
        }
        Ok(confirmed)
    }

    /// Escalates, once, every enforcement point that has not confirmed a kill switch
    /// within `retirement.enforcement_confirm_secs`: an email to governance and the
    /// model's contacts, and an audit record. Returns how many.
    pub async fn escalate_silent_enforcement_points(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let window = chrono::Duration::seconds(
            i64::try_from(self.inner.decommission.enforcement_confirm_secs).unwrap_or(i64::MAX),
        );
        let overdue = repo::overdue(self.store().reader(), now - window).await?;
        for c in &overdue {
            let retirement = self.retirements().retirement(c.retirement_id).await?;
            in_write_tx!(self, |tx| {
                repo::mark_escalated(tx.conn(), c.retirement_id, c.consumer_id, now).await?;
                let problem = format!(
                    "enforcement point {} has not confirmed the kill switch of {} {} (told at {}, list ETag {})",
                    c.point,
                    retirement.model,
                    retirement.selection,
                    c.told_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    c.etag
                );
                let to =
                    super::super::retirements::escalation_contacts(self, tx.conn(), &retirement)
                        .await?;
                if self.inner.retirements.notifications.smtp.is_some() && !to.is_empty() {
                    let notice = self.point_notice(
                        NoticeKind::Undeliverable,
                        &retirement,
                        &c.point,
                        &c.etag,
                        Some(problem.clone()),
                        now,
                    );
                    notice_repo::insert(
                        tx.conn(),
                        &[OutboxNotice::pending(
                            retirement.id,
                            None,
                            Channel::Email,
                            to,
                            &notice,
                        )],
                    )
                    .await?;
                }
                let entry = AuditEntry::new(
                    Actor::system().audit_identity(),
                    Action::EnforcementEscalated,
                    SubjectType::Retirement,
                    retirement.id.to_string(),
                )
                .after(&serde_json::json!({ "point": c.point, "problem": problem }));
                self.append_audit(tx, now, entry).await
            })?;
            tracing::error!(retirement = c.retirement_id.0, point = %c.point, "enforcement point never confirmed; escalated");
        }
        if !overdue.is_empty() {
            self.retirements().wake_delivery();
        }
        Ok(overdue.len())
    }

    /// Step `enforcement`: done when every point told of the kill switch has confirmed
    /// or been escalated; the certificate names each either way.
    pub(super) async fn step_enforcement(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let told = self.enforcement_confirmations(r.id).await?;
        let db = self.store().reader();
        let now = self.now();
        let waiting: Vec<&str> = told
            .iter()
            .filter(|c| c.confirmed_at.is_none() && c.escalated_at.is_none())
            .map(|c| c.point.as_str())
            .collect();
        if !waiting.is_empty() {
            let why = format!(
                "waiting for {} enforcement point(s) to confirm (escalated after {} s): {}",
                waiting.len(),
                self.inner.decommission.enforcement_confirm_secs,
                waiting.join(", ")
            );
            switch_repo::note_step_failure(db, r.id, DecommissionStep::Enforcement, now, &why)
                .await?;
            return Ok(Some(why));
        }
        let silent: Vec<&str> = told
            .iter()
            .filter(|c| c.confirmed_at.is_none())
            .map(|c| c.point.as_str())
            .collect();
        let outcome = match (told.len(), silent.is_empty()) {
            (0, _) => "no enforcement points are registered".to_owned(),
            (n, true) => format!("all {n} enforcement point(s) confirmed"),
            (n, false) => format!(
                "{} of {n} enforcement point(s) confirmed; never confirmed (escalated): {}",
                n - silent.len(),
                silent.join(", ")
            ),
        };
        switch_repo::finish_step(
            db,
            r.id,
            DecommissionStep::Enforcement,
            now,
            now,
            &outcome,
            None,
        )
        .await?;
        Ok(None)
    }

    /// The enforcement points told of retirement `id`'s kill switch, and how each fared.
    pub async fn enforcement_confirmations(
        &self,
        id: RetirementId,
    ) -> Result<Vec<Confirmation>, ServiceError> {
        Ok(repo::of_retirement(self.store().reader(), id).await?)
    }
}

/// Background work owns the whole service (the supervisor spawns it).
impl Services {
    /// Follows the disabled list in the database, so a kill switch pulled through
    /// another instance reaches this one's subscribers as soon as its notification does
    /// (PostgreSQL), or within one poll interval (`inventory.poll_interval_ms`, 250 ms by
    /// default). Runs until the process ends.
    pub async fn run_kill_switch_watch(self) {
        let mut ticks = tokio::time::interval(self.inner.decommission.kill_switch_poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.poll_or_wake(&mut ticks, crate::store::notify::Topic::KillSwitch)
                .await;
            if let Err(e) = self.decommission().publish_kill_switch().await {
                tracing::warn!(error = %e, "could not read the kill switch");
            }
        }
    }
}
