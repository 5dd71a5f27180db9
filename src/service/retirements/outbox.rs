//! Turning a retirement into notices: one per channel a dependent can be reached on, each
//! with its own id (the `webhook-id` and Message-ID of every attempt) and an
//! acknowledgement link bound to that dependent. A dependent reachable on no channel is
//! escalated at once rather than silently skipped.

use super::Services;
use crate::attest::link_token::{LinkClaims, LinkPurpose};
use crate::domain::Consumer;
use crate::domain::ConsumerId;
use crate::domain::RetirementId;
use crate::domain::{Channel, NoticeState, OutboxNotice};
use crate::domain::{Dependent, Retirement};
use chrono::{DateTime, Utc};
use notifiers::{Notice, NoticeData, NoticeKind, Replacement};

/// A fresh notice id: `ntc_` and 128 random bits.
pub(crate) fn new_notice_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("ntc_{}", hex::encode(bytes))
}

impl crate::service::Retirements<'_> {
    /// The acknowledgement link of one dependent of `retirement`.
    pub(crate) fn acknowledge_url(
        &self,
        retirement: &Retirement,
        consumer_id: ConsumerId,
    ) -> String {
        let days = i64::from(self.inner.retirements.notifications.link_valid_days_after);
        let token = self.service_key().link_token_key().issue(&LinkClaims {
            purpose: LinkPurpose::Acknowledge,
            retirement: retirement.id.0,
            dependent: consumer_id.0,
            expires_at: retirement.effective_at + chrono::Duration::days(days),
        });
        format!("{}/v1/acknowledgements/{token}", self.public_url())
    }

    pub(crate) fn public_url(&self) -> &str {
        self.inner.retirements.public_url.trim_end_matches('/')
    }

    /// The host of [`Self::public_url`], which makes calendar UIDs unique.
    pub fn public_host(&self) -> Option<&str> {
        let rest = self.public_url().split_once("://")?.1;
        rest.split(['/', ':']).next().filter(|h| !h.is_empty())
    }

    /// The payload of a `kind` notice of `retirement` to one dependent.
    pub(crate) fn notice_payload(
        &self,
        id: &str,
        retirement: &Retirement,
        kind: NoticeKind,
        dependent: &Dependent,
        now: DateTime<Utc>,
    ) -> Notice {
        Notice {
            kind,
            timestamp: now,
            data: NoticeData {
                notice_id: id.to_owned(),
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
                replacement: retirement.replacement_model.as_ref().map(|m| Replacement {
                    model: m.to_string(),
                    version: retirement.replacement_version.map(|v| v.to_string()),
                }),
                dependent: dependent.consumer.clone(),
                notice_ends_at: dependent.notice_ends_at,
                acknowledge_url: self.acknowledge_url(retirement, dependent.consumer_id),
                problem: None,
                etag: None,
                closed_to_new_consumers: retirement.levers.freeze_new_consumers,
                brownouts: retirement
                    .levers
                    .brownouts
                    .iter()
                    .filter(|w| w.end > now)
                    .map(|w| notifiers::BrownoutWindow {
                        start: w.start,
                        end: w.end,
                    })
                    .collect(),
                refused: Vec::new(),
            },
        }
    }

    /// One notice per channel each dependent can be reached on: its webhook, and email
    /// to its contacts when an SMTP server is configured. A dependent with neither gets
    /// an escalation to the model's owners and governance instead.
    pub(crate) fn notices_for<'a>(
        &self,
        retirement: &Retirement,
        kind: NoticeKind,
        dependents: impl IntoIterator<Item = (&'a Dependent, &'a Consumer)>,
        escalate_to: &[String],
        now: DateTime<Utc>,
    ) -> Vec<OutboxNotice> {
        let email = self.inner.retirements.notifications.smtp.is_some();
        let mut out = Vec::new();
        for (dependent, consumer) in dependents {
            let mut reached = false;
            if consumer.webhook_url.is_some() {
                out.push(self.outbox_notice(
                    retirement,
                    kind,
                    dependent,
                    Channel::Webhook,
                    Vec::new(),
                    now,
                ));
                reached = true;
            }
            if email && !consumer.contacts.is_empty() {
                let to = consumer
                    .contacts
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect();
                out.push(self.outbox_notice(retirement, kind, dependent, Channel::Email, to, now));
                reached = true;
            }
            if !reached {
                tracing::warn!(
                    retirement = retirement.id.0,
                    consumer = %consumer.name,
                    "dependent has no webhook and no contact email; escalating"
                );
                out.extend(self.escalation(
                    retirement,
                    dependent,
                    &format!(
                        "{} has neither a notice webhook nor contacts{}: it cannot be told",
                        consumer.name,
                        if email {
                            ""
                        } else {
                            " reachable by email (no SMTP server is configured)"
                        }
                    ),
                    escalate_to,
                    now,
                ));
            }
        }
        out
    }

    fn outbox_notice(
        &self,
        retirement: &Retirement,
        kind: NoticeKind,
        dependent: &Dependent,
        channel: Channel,
        recipients: Vec<String>,
        now: DateTime<Utc>,
    ) -> OutboxNotice {
        let id = new_notice_id();
        let payload = self.notice_payload(&id, retirement, kind, dependent, now);
        OutboxNotice::pending(
            retirement.id,
            Some(dependent.consumer_id),
            channel,
            recipients,
            &payload,
        )
    }

    /// An email to the model's owners and governance saying `problem` about one
    /// dependent's notice; none when there is nobody to write to or no SMTP server (the
    /// dead letter stays visible in GraphQL either way).
    pub(crate) fn escalation(
        &self,
        retirement: &Retirement,
        dependent: &Dependent,
        problem: &str,
        escalate_to: &[String],
        now: DateTime<Utc>,
    ) -> Option<OutboxNotice> {
        self.inner.retirements.notifications.smtp.as_ref()?;
        if escalate_to.is_empty() {
            return None;
        }
        let to = escalate_to.to_vec();
        let id = new_notice_id();
        let mut payload =
            self.notice_payload(&id, retirement, NoticeKind::Undeliverable, dependent, now);
        payload.data.problem = Some(problem.to_owned());
        Some(OutboxNotice::pending(
            retirement.id,
            None,
            Channel::Email,
            to,
            &payload,
        ))
    }
}

/// Who hears of undeliverable notices of `retirement`: the model's contacts and
/// governance's, at most as many as one email takes.
pub(crate) async fn escalation_contacts(
    services: &Services,
    conn: &impl sea_orm::ConnectionTrait,
    retirement: &Retirement,
) -> Result<Vec<String>, crate::store::StoreError> {
    let model = crate::store::registry::find_model(conn, &retirement.model).await?;
    let mut to: Vec<String> = model
        .map(|(_, m)| m.contacts.iter().map(|c| c.as_str().to_owned()).collect())
        .unwrap_or_default();
    to.extend(
        services
            .inner
            .retirements
            .notifications
            .governance_contacts
            .iter()
            .cloned(),
    );
    to.sort();
    to.dedup();
    to.truncate(notifiers::email::Recipients::MAX);
    Ok(to)
}

/// The constructor from a rendered notice lives with the service that renders them:
/// the domain knows nothing of the notifiers.
impl OutboxNotice {
    /// `notice` to go out on `channel`, due at once; its id, kind and time are the
    /// notice's own.
    pub fn pending(
        retirement_id: RetirementId,
        consumer_id: Option<ConsumerId>,
        channel: Channel,
        recipients: Vec<String>,
        notice: &notifiers::Notice,
    ) -> Self {
        Self {
            id: notice.id().to_owned(),
            retirement_id,
            consumer_id,
            kind: notice.kind.as_str().to_owned(),
            channel,
            recipients,
            payload: notice.to_json_string(),
            state: NoticeState::Pending,
            attempts: 0,
            next_attempt_at: notice.timestamp,
            last_attempt_at: None,
            last_error: None,
            delivered_at: None,
            created_at: notice.timestamp,
        }
    }
}
