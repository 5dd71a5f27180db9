//! The delivery worker: drains the notice outbox. Each pass claims the notices due now
//! (held while the worker's instance beats, so one that dies leaves them to be retried
//! within seconds rather than lost), makes one attempt at each outside any transaction,
//! many at once, then records the outcomes as they come, in one transaction each: delivered; retried later on `notifiers::retry`'s schedule; or
//! dead-lettered and escalated to the model's owners and governance. A webhook answering
//! 410 Gone is disabled (an audited change of the consumer) and its owners are told by
//! email. A notice may so be sent twice (a crash after the attempt, before its record),
//! always under the same id, which receivers use to drop the repeat.

use super::{ServiceError, Services};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::domain::ConsumerId;
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::domain::{Channel, OutboxNotice};
use crate::store::StoreError;
use crate::store::inventory::{self as inventory_repo, Entity};
use crate::store::notices::{self as repo, WebhookTarget};
use crate::store::retirements as retirement_repo;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use notifiers::email::{EmailNotifier, Recipients};
use notifiers::webhook::{WebhookAddress, WebhookNotifier};
use notifiers::{Notice, NoticeKind, Notifier, Outcome};
use std::collections::{BTreeSet, HashMap};

/// Outcomes stored in one transaction at most: those that completed together.
const RECORD_AT_ONCE: usize = 64;

/// The delivery channels, built once when first needed (lettre's transport wants a
/// running Tokio runtime).
pub(crate) struct Channels {
    webhook: WebhookNotifier,
    email: Option<EmailNotifier>,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempted: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub dead: usize,
}

impl super::Retirements<'_> {
    /// Refuses, when it is set, a webhook URL that deliveries could never use: plain
    /// `http://` where it is not allowed, or an internal address written as the host.
    /// (A host name is checked again at every delivery, against what it resolves to.)
    pub(crate) fn check_webhook_destination(
        &self,
        url: &crate::domain::WebhookUrl,
    ) -> Result<(), ServiceError> {
        let policy = self
            .inner
            .retirements
            .notifications
            .outbound_policy()
            .map_err(ServiceError::internal)?;
        policy.check_url(url.as_str()).map_err(|blocked| {
            crate::domain::ParseError::new("webhook url", blocked.to_string()).into()
        })
    }

    fn channels(&self) -> Result<&Channels, ServiceError> {
        let built = self.inner.retirements.channels.get_or_init(|| {
            let n = &self.inner.retirements.notifications;
            let policy = n.outbound_policy().map_err(|e| e.to_string())?;
            let webhook = WebhookNotifier::new(
                std::time::Duration::from_secs(n.webhook_timeout_secs),
                policy,
            )
            .map_err(|e| e.to_string())?;
            let email = match &n.smtp {
                Some(smtp) => {
                    let templates = notifiers::email::Templates::load(n.templates_dir.as_deref())
                        .map_err(|e| e.to_string())?;
                    Some(
                        EmailNotifier::new(&smtp.to_smtp_settings(), templates)
                            .map_err(|e| e.to_string())?,
                    )
                }
                None => None,
            };
            Ok(Channels { webhook, email })
        });
        match built {
            Ok(c) => Ok(c),
            Err(e) => Err(ServiceError::internal(std::io::Error::other(format!(
                "notice channels: {e}"
            )))),
        }
    }

    /// The email channel, when SMTP is configured.
    pub(crate) fn email_channel(&self) -> Result<Option<&EmailNotifier>, ServiceError> {
        Ok(self.channels()?.email.as_ref())
    }

    /// Asks the delivery worker to look at the outbox now (after a commit that wrote
    /// notices), rather than at its next poll.
    pub(crate) fn wake_delivery(&self) {
        self.inner.retirements.delivery_wake.notify_one();
    }

    /// How many notices one pass claims: one per delivery it makes at once, so every
    /// claimed notice is attempted at once and its lease need only cover one attempt.
    fn batch(&self) -> u64 {
        self.inner.retirements.notifications.concurrency as u64
    }

    /// The lease a claim takes: one attempt's timeout and a margin. A worker that dies
    /// stops beating, and its claims are taken within `heartbeat::DEAD_AFTER`; the lease
    /// is the safety net for a live worker whose attempt outlasts its timeout.
    fn lease(&self) -> chrono::Duration {
        let n = &self.inner.retirements.notifications;
        let longest = n
            .smtp
            .as_ref()
            .map_or(0, |s| s.timeout_secs)
            .max(n.webhook_timeout_secs);
        let longest = i64::try_from(longest).unwrap_or(300);
        chrono::Duration::seconds(longest + 5)
    }

    /// One pass over the outbox: every notice due now, at most a batch.
    pub async fn deliver_due_notices(&self) -> Result<DeliveryReport, ServiceError> {
        let channels = self.channels()?;
        let now = self.now();
        let wall_now = Utc::now();
        let claim = repo::Claim {
            holder: &self.inner.instance,
            now,
            lease_until: now + self.lease(),
            wall_now,
            live_after: wall_now - super::heartbeat::DEAD_AFTER,
            limit: self.batch(),
        };
        let backend = self.store().backend();
        let claimed = in_write_tx!(self, |tx| {
            Ok(repo::claim_due(tx.conn(), backend, claim).await?)
        })?;
        if claimed.is_empty() {
            return Ok(DeliveryReport::default());
        }
        let webhook_consumers: Vec<ConsumerId> = claimed
            .iter()
            .filter(|n| n.channel == Channel::Webhook)
            .filter_map(|n| n.consumer_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let targets = repo::webhook_targets(self.store().reader(), &webhook_consumers).await?;
        let concurrency = self.inner.retirements.notifications.concurrency;
        // Outcomes are stored as attempts complete (those done together in one
        // transaction), so a crash repeats only the attempts in flight.
        let mut completed = futures_util::stream::iter(claimed)
            .map(|notice| {
                let targets = &targets;
                async move {
                    let at = self.now();
                    let outcome = self.attempt(channels, &notice, targets, at).await;
                    let label = match &outcome {
                        Outcome::Delivered => "delivered",
                        Outcome::Retry { .. } => "retry",
                        Outcome::Gone { .. } => "gone",
                        Outcome::Refused { .. } => "refused",
                    };
                    crate::prometheus::record_delivery(notice.channel.as_str(), label);
                    (notice, outcome, at)
                }
            })
            .buffer_unordered(concurrency)
            .ready_chunks(RECORD_AT_ONCE);
        let mut report = DeliveryReport::default();
        while let Some(attempts) = completed.next().await {
            let done = self.record_outcomes(attempts).await?;
            report.attempted += done.attempted;
            report.delivered += done.delivered;
            report.retrying += done.retrying;
            report.dead += done.dead;
        }
        tracing::debug!(?report, "delivery pass");
        Ok(report)
    }

    async fn attempt(
        &self,
        channels: &Channels,
        notice: &OutboxNotice,
        targets: &HashMap<ConsumerId, WebhookTarget>,
        at: DateTime<Utc>,
    ) -> Outcome {
        let payload: Notice = match serde_json::from_str(&notice.payload) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Refused {
                    reason: format!("the stored payload does not parse: {e}"),
                };
            }
        };
        match notice.channel {
            Channel::Webhook => {
                let address = notice
                    .consumer_id
                    .and_then(|id| targets.get(&id))
                    .ok_or_else(|| "the consumer no longer exists".to_owned())
                    .and_then(|t| self.webhook_address(t));
                match address {
                    Ok(to) => channels.webhook.deliver(&payload, &to, at).await,
                    Err(reason) => Outcome::Refused { reason },
                }
            }
            Channel::Email => {
                let Some(email) = &channels.email else {
                    // Configuration changed since the notice was written; it may come back.
                    return Outcome::Retry {
                        reason: "no SMTP server is configured".into(),
                        after: None,
                    };
                };
                match Recipients::parse(notice.recipients.iter().map(String::as_str)) {
                    Ok(to) => email.deliver(&payload, &to, at).await,
                    Err(e) => Outcome::Refused {
                        reason: e.to_string(),
                    },
                }
            }
        }
    }

    fn webhook_address(&self, target: &WebhookTarget) -> Result<WebhookAddress, String> {
        let (Some(url), Some(sealed)) = (&target.url, &target.sealed_secret) else {
            return Err(format!("{} no longer has a notice webhook", target.name));
        };
        let name = crate::domain::ConsumerName::parse(&target.name).map_err(|e| e.to_string())?;
        let opened = self
            .service_key()
            .secret_sealer()
            .open(&super::inventory::secret_binding(&name), sealed)
            .map_err(|e| e.to_string())?;
        let secret = std::str::from_utf8(&opened)
            .ok()
            .and_then(|s| notifiers::standard_webhooks::Secret::parse(s).ok())
            .ok_or_else(|| format!("the webhook secret of {} is damaged", target.name))?;
        Ok(WebhookAddress {
            url: url.clone(),
            secret,
        })
    }

    /// Records every attempt of a pass in one transaction, with what follows from it:
    /// first-delivery stamps, dead letters and their escalations, disabled webhooks.
    async fn record_outcomes(
        &self,
        attempts: Vec<(OutboxNotice, Outcome, DateTime<Utc>)>,
    ) -> Result<DeliveryReport, ServiceError> {
        let Settled {
            report,
            updated,
            delivered_to,
            dead,
            gone,
        } = settle(attempts);
        let wrote_notices = in_write_tx!(self, |tx| {
            let now = self.now();
            for n in &updated {
                repo::record(tx.conn(), n).await?;
            }
            for (retirement, consumers) in &delivered_to {
                retirement_repo::mark_notified(tx.conn(), *retirement, consumers, now).await?;
            }
            let (follow_ups, audits) = self.escalate_dead(tx, &dead, &gone, now).await?;
            repo::insert(tx.conn(), &follow_ups).await?;
            if !audits.is_empty() {
                tx.append_audits(now, audits, self.service_key().audit_mac_key())
                    .await?;
            }
            Ok(!follow_ups.is_empty())
        })?;
        if report.dead > 0 {
            tracing::warn!(dead = report.dead, "notices dead-lettered and escalated");
        }
        if wrote_notices {
            self.wake_delivery();
        }
        if !gone.is_empty() {
            // The graph shows the webhook gone once it reads the change.
            self.inventory().refresh_inventory().await?;
        }
        Ok(report)
    }

    /// Escalates each dead notice of a dependent (an escalation that fails is not
    /// escalated again) and disables the webhooks that answered 410 Gone; returns the
    /// notices and audit records to write.
    async fn escalate_dead(
        &self,
        tx: &mut crate::store::WriteTx,
        dead: &[(OutboxNotice, String)],
        gone: &BTreeSet<ConsumerId>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<OutboxNotice>, Vec<AuditEntry>), ServiceError> {
        let mut follow_ups = Vec::new();
        let mut retirements: HashMap<RetirementId, (Retirement, Vec<String>)> = HashMap::new();
        let mut audits = Vec::new();
        let mut gone = gone.clone();
        for (n, why) in dead {
            audits.push(
                AuditEntry::new(
                    ("delivery-worker", "system"),
                    Action::NoticeDeadLettered,
                    SubjectType::Notice,
                    n.id.clone(),
                )
                .after(&serde_json::json!({
                "retirement": n.retirement_id,
                "consumer": n.consumer_id,
                "channel": n.channel.as_str(),
                "kind": n.kind,
                "attempts": n.attempts,
                "error": why,
                })),
            );
            // An escalation that fails is not escalated again: it stays a dead letter.
            let Some(consumer) = n.consumer_id else {
                continue;
            };
            let (retirement, escalate_to) = match retirements.get(&n.retirement_id) {
                Some(r) => r,
                None => {
                    let Some(r) = retirement_repo::find(tx.conn(), n.retirement_id).await? else {
                        continue;
                    };
                    let to = super::retirements::escalation_contacts(self, tx.conn(), &r).await?;
                    retirements.entry(n.retirement_id).or_insert((r, to))
                }
            };
            let Some(dependent) =
                retirement_repo::dependent(tx.conn(), n.retirement_id, consumer).await?
            else {
                continue;
            };
            let problem = format!(
                "notice {} ({} by {}) to {}: {why}",
                n.id,
                n.kind,
                n.channel.as_str(),
                dependent.consumer
            );
            follow_ups.extend(self.escalation(retirement, &dependent, &problem, escalate_to, now));
            if gone.contains(&consumer) && n.channel == Channel::Webhook {
                follow_ups.extend(
                    self.disable_webhook(tx, retirement, &dependent, why, &mut audits, now)
                        .await?,
                );
                gone.remove(&consumer);
            }
        }
        Ok((follow_ups, audits))
    }

    /// Disables a consumer's webhook after it answered 410 Gone (Standard Webhooks: stop
    /// sending to it): an audited, versioned change of the consumer, and an email to its
    /// contacts when there is a way to send one.
    async fn disable_webhook(
        &self,
        tx: &mut crate::store::WriteTx,
        retirement: &Retirement,
        dependent: &crate::domain::Dependent,
        why: &str,
        audits: &mut Vec<AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxNotice>, StoreError> {
        let Some(before) = inventory_repo::consumer_by_id(tx.conn(), dependent.consumer_id).await?
        else {
            return Ok(None);
        };
        if before.webhook_url.is_none() {
            return Ok(None);
        }
        let after = crate::domain::Consumer {
            webhook_url: None,
            ..before.clone()
        };
        inventory_repo::update_consumer(tx.conn(), dependent.consumer_id, &after, Some(None), now)
            .await?;
        inventory_repo::record_change(tx.conn(), now, Entity::Consumer, dependent.consumer_id)
            .await?;
        audits.push(
            AuditEntry::new(
                ("delivery-worker", "system"),
                Action::ConsumerWebhookDisabled,
                SubjectType::Consumer,
                before.name.to_string(),
            )
            .before(&before)
            .after(&serde_json::json!({ "consumer": &after, "reason": why })),
        );
        tracing::warn!(consumer = %before.name, "notice webhook answered 410 Gone; disabled");
        if self.inner.retirements.notifications.smtp.is_none() || before.contacts.is_empty() {
            return Ok(None);
        }
        let id = super::retirements::new_notice_id();
        let mut payload =
            self.notice_payload(&id, retirement, NoticeKind::WebhookDisabled, dependent, now);
        payload.data.problem = Some(why.to_owned());
        Ok(Some(OutboxNotice::pending(
            retirement.id,
            // Not counted as the dependent's notice: it says nothing of the retirement.
            None,
            Channel::Email,
            before
                .contacts
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            &payload,
        )))
    }
}

/// How long the worker sleeps at most: notices written by another instance are found
/// within this.
const POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Notices about the retirement itself, as opposed to escalations and webhook news.
fn is_retirement_notice(kind: &str) -> bool {
    kind != NoticeKind::Undeliverable.as_str() && kind != NoticeKind::WebhookDisabled.as_str()
}

/// What a pass's attempts came to, before it is written.
struct Settled {
    report: DeliveryReport,
    updated: Vec<OutboxNotice>,
    /// Retirement → the dependents a retirement notice reached.
    delivered_to: HashMap<RetirementId, Vec<ConsumerId>>,
    dead: Vec<(OutboxNotice, String)>,
    /// Consumers whose webhook answered 410 Gone.
    gone: BTreeSet<ConsumerId>,
}

/// Applies each attempt's outcome to its notice: delivered, retried after a backoff, or
/// dead (out of attempts, gone, or refused).
fn settle(attempts: Vec<(OutboxNotice, Outcome, DateTime<Utc>)>) -> Settled {
    let mut s = Settled {
        report: DeliveryReport {
            attempted: attempts.len(),
            ..DeliveryReport::default()
        },
        updated: Vec::with_capacity(attempts.len()),
        delivered_to: HashMap::new(),
        dead: Vec::new(),
        gone: BTreeSet::new(),
    };
    for (mut n, outcome, at) in attempts {
        n.attempted(at);
        let attempts = u32::try_from(n.attempts).unwrap_or(u32::MAX);
        let died = match outcome {
            Outcome::Delivered => {
                n.delivered(at);
                s.report.delivered += 1;
                if let Some(c) = n.consumer_id
                    && is_retirement_notice(&n.kind)
                {
                    s.delivered_to.entry(n.retirement_id).or_default().push(c);
                }
                None
            }
            Outcome::Retry { reason, after } => {
                match notifiers::retry::next_wait(attempts, after, rand::random::<f64>()) {
                    Some(wait) => {
                        let wait =
                            chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1));
                        n.retry_at(at + wait, reason);
                        s.report.retrying += 1;
                        None
                    }
                    None => Some(format!(
                        "{} attempts over about three days failed; the last: {reason}",
                        n.attempts
                    )),
                }
            }
            Outcome::Gone { reason } => {
                if let Some(c) = n.consumer_id {
                    s.gone.insert(c);
                }
                Some(reason)
            }
            Outcome::Refused { reason } => Some(reason),
        };
        if let Some(why) = died {
            n.dead(why.clone());
            s.report.dead += 1;
            s.dead.push((n.clone(), why));
        }
        s.updated.push(n);
    }
    s
}

/// Background work owns the whole service (the supervisor spawns it).
impl Services {
    /// Runs the worker until its task is aborted: a pass whenever notices are due, woken
    /// early by commits that write notices.
    pub async fn run_delivery(self) {
        loop {
            let wait = match self.retirements().deliver_due_notices().await {
                // A full batch: more may be waiting.
                Ok(r) if r.attempted as u64 >= self.retirements().batch() => continue,
                Ok(_) => match repo::next_due(self.store().reader()).await {
                    Ok(Some(next)) => (next - self.now()).to_std().unwrap_or_default().min(POLL),
                    Ok(None) => POLL,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the outbox failed");
                        POLL
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "notice delivery pass failed");
                    POLL
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.retirements.delivery_wake.notified() => {}
            }
        }
    }
}
