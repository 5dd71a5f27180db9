//! What governance decides on a pending retirement, and what dependents ask of it:
//! postponing (everyone's notice runs to the new date), accepting a shorter notice for
//! dependents found late, overriding named dependents, and requests for more time with
//! their grant or refusal. Each is one audited transaction; whoever's terms change is
//! told through the outbox, and the state then follows the dependents.

use super::{MAX_TEXT, ServiceError, not_found, outbox, require_governance};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::ConsumerId;
use crate::domain::RetirementId;
use crate::domain::{ConsumerName, ParseError, Role, Text};
use crate::domain::{Dependent, Retirement};
use crate::store::WriteTx;
use crate::store::notices as outbox_repo;
use crate::store::retirements as repo;
use chrono::{DateTime, Utc};
use notifiers::NoticeKind;

/// The most dependents one override names.
const MAX_OVERRIDES: usize = 1_000;

impl crate::service::Retirements<'_> {
    /// Moves the effective date later; every dependent's notice runs at least to it.
    pub async fn postpone_retirement(
        &self,
        actor: &Actor,
        id: RetirementId,
        effective_at: DateTime<Utc>,
        reason: &str,
    ) -> Result<Retirement, ServiceError> {
        let reason = Text::parse_required("reason", reason, MAX_TEXT)?;
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require_governance(actor, "postpone retirements")?;
        let tier = self.tier_of(&self.retirement(id).await?).await?;
        self.decide(
            actor,
            id,
            Action::RetirementPostponed,
            |before, dependents, now| {
                if effective_at <= before.effective_at {
                    return Err(ParseError::new(
                        "effectiveAt",
                        format!(
                            "postponing moves the date later than {}; to bring it earlier, cancel \
                         and schedule again with full notice",
                            before.effective_at.to_rfc3339()
                        ),
                    )
                    .into());
                }
                let after = before.postponed(effective_at, reason.as_str().to_owned(), now);
                let changed = dependents
                    .iter()
                    .map(|d| {
                        let ends = d.notice_ends_at.max(effective_at);
                        d.notice_ending(ends, self.notice_policy().next_reminder(tier, now, ends))
                    })
                    .collect();
                Ok((after, changed))
            },
        )
        .await
    }

    /// Accepts that the dependents found late, whose own notice would end after the
    /// effective date, get less: their notice ends on that date. Written justification.
    pub async fn accept_shorter_notice(
        &self,
        actor: &Actor,
        id: RetirementId,
        justification: &str,
    ) -> Result<Retirement, ServiceError> {
        let justification = Text::parse_required("justification", justification, MAX_TEXT)?;
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require_governance(actor, "accept shorter notice")?;
        self.decide(
            actor,
            id,
            Action::RetirementStateChanged,
            |before, dependents, now| {
                let changed: Vec<Dependent> = dependents
                    .iter()
                    .filter(|d| d.notice_ends_at > before.effective_at)
                    .map(|d| d.notice_ending(before.effective_at, d.next_reminder_at))
                    .collect();
                if changed.is_empty() {
                    return Err(ServiceError::Conflict(format!(
                        "every dependent of retirement {id} already has its full notice by the \
                     effective date"
                    )));
                }
                let note = format!("shorter notice accepted: {}", justification.as_str());
                let after = before.decided(note, now);
                Ok((after, changed))
            },
        )
        .await
    }

    /// Releases named dependents from holding the retirement back (no acknowledgement
    /// or quiet period needed), with a written justification.
    pub async fn override_dependents(
        &self,
        actor: &Actor,
        id: RetirementId,
        consumers: &[String],
        justification: &str,
    ) -> Result<Vec<Dependent>, ServiceError> {
        let justification = Text::parse_required("justification", justification, MAX_TEXT)?;
        if consumers.is_empty() || consumers.len() > MAX_OVERRIDES {
            return Err(ParseError::new(
                "consumers",
                format!("name 1 to {MAX_OVERRIDES} dependents"),
            )
            .into());
        }
        let names = consumers
            .iter()
            .map(|c| ConsumerName::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require_governance(actor, "override dependents")?;
        let mut overridden = Vec::new();
        self.decide(
            actor,
            id,
            Action::RetirementDependentOverridden,
            |before, dependents, now| {
                let mut changed = Vec::new();
                for name in &names {
                    let d = dependents
                        .iter()
                        .find(|d| d.consumer == name.as_str())
                        .ok_or_else(|| {
                            ServiceError::NotFound(format!(
                                "{name} is not a dependent of retirement {id}"
                            ))
                        })?;
                    changed.push(d.overridden(&actor.name, justification.as_str(), now));
                }
                overridden.clone_from(&changed);
                Ok((before.clone(), changed))
            },
        )
        .await?;
        Ok(overridden)
    }

    /// A dependent asks for its notice to run until `until`, saying why. By its owners,
    /// a token bound to it, or through its notice link (`by_link`).
    pub async fn request_extension(
        &self,
        requester: Requester<'_>,
        id: RetirementId,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<Dependent, ServiceError> {
        let reason = Text::parse_required("reason", reason, MAX_TEXT)?;
        let (consumer_id, identity) = match requester {
            Requester::Actor(actor, consumer) => {
                let name = ConsumerName::parse(consumer)?;
                let consumer_id = self.may_act_for(actor, &name).await?;
                (
                    consumer_id,
                    (
                        actor.name.clone(),
                        actor.role.as_str().to_owned(),
                        actor.client_ip,
                    ),
                )
            }
            Requester::Link(token) => {
                let claims = self.link_claims(token).await?;
                if claims.retirement != id.0 {
                    return Err(ServiceError::Forbidden(
                        "this link is for another retirement".into(),
                    ));
                }
                (
                    ConsumerId(claims.dependent),
                    ("notice-link".to_owned(), "dependent".to_owned(), None),
                )
            }
        };
        let done = in_write_tx!(self, |tx| {
            let now = self.now();
            let retirement = repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| not_found(id))?;
            if !retirement.state.is_pending() {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id} is {}",
                    retirement.state
                )));
            }
            let before = repo::dependent(tx.conn(), id, consumer_id)
                .await?
                .ok_or_else(|| {
                    ServiceError::NotFound(format!("retirement {id} has no such dependent"))
                })?;
            if until <= before.notice_ends_at {
                return Err(ParseError::new(
                    "until",
                    format!(
                        "must be after the notice's end, {}",
                        before.notice_ends_at.to_rfc3339()
                    ),
                )
                .into());
            }
            let after = before.extension_requested(until, reason.as_str());
            self.record_dependent(
                tx,
                crate::audit::AuditIdentity {
                    name: &identity.0,
                    role: &identity.1,
                    client_ip: identity.2,
                },
                Action::RetirementExtensionRequested,
                &before,
                &after,
                now,
            )
            .await?;
            Ok(after)
        })?;
        self.publish_retirement(id, "extension-requested");
        Ok(done)
    }

    /// Grants or refuses a dependent's request for more time. A grant moves its notice's
    /// end to the date asked; if that is after the effective date, the retirement needs
    /// a decision (postpone, or accept the shorter notice).
    pub async fn decide_extension(
        &self,
        actor: &Actor,
        id: RetirementId,
        consumer: &str,
        grant: bool,
        note: &str,
    ) -> Result<Dependent, ServiceError> {
        let note = Text::parse_required("note", note, MAX_TEXT)?;
        let name = ConsumerName::parse(consumer)?;
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require_governance(actor, "decide on extensions")?;
        let tier = self.tier_of(&self.retirement(id).await?).await?;
        let mut decided = None;
        self.decide(
            actor,
            id,
            Action::RetirementExtensionDecided,
            |before, dependents, now| {
                let d = dependents
                    .iter()
                    .find(|d| d.consumer == name.as_str())
                    .ok_or_else(|| {
                        ServiceError::NotFound(format!(
                            "{name} is not a dependent of retirement {id}"
                        ))
                    })?;
                let after = d
                    .extension_decided(grant, note.as_str(), |until| {
                        self.notice_policy().next_reminder(tier, now, until)
                    })
                    .map_err(|_| {
                        ServiceError::Conflict(format!(
                            "{name} has no pending request for more time"
                        ))
                    })?;
                decided = Some(after.clone());
                Ok((before.clone(), vec![after]))
            },
        )
        .await?;
        decided.ok_or_else(|| ServiceError::internal(std::io::Error::other("no decision recorded")))
    }

    /// Whether `actor` may act for consumer `name`: its team's owners, a token bound to
    /// it, or governance. Returns its id.
    pub(super) async fn may_act_for(
        &self,
        actor: &Actor,
        name: &ConsumerName,
    ) -> Result<ConsumerId, ServiceError> {
        let consumer_id = self.inventory().graph_consumer(name.as_str()).await?;
        let owner = self
            .read_graph()
            .consumer(consumer_id)
            .map(|c| c.owner_team.clone());
        if may_act_for(actor, name, owner.as_ref()) {
            Ok(consumer_id)
        } else {
            Err(ServiceError::Forbidden(format!(
                "only {name}'s owners, a token bound to it, or governance may act for it"
            )))
        }
    }

    /// One governance decision: `change` gives the retirement after and the dependents
    /// it changed; they are written, audited (`action`, before and after), told of their
    /// new terms when their notice's end moved, and the state then follows.
    async fn decide(
        &self,
        actor: &Actor,
        id: RetirementId,
        action: Action,
        mut change: impl FnMut(
            &Retirement,
            &[Dependent],
            DateTime<Utc>,
        ) -> Result<(Retirement, Vec<Dependent>), ServiceError>
        + Send,
    ) -> Result<Retirement, ServiceError> {
        let result = in_write_tx!(self, |tx| {
            let now = self.now();
            let before = repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| not_found(id))?;
            if !before.state.is_pending() {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id} is {}; only a pending retirement can be changed",
                    before.state
                )));
            }
            let dependents = repo::dependents(tx.conn(), id).await?;
            let (after, changed) = change(&before, &dependents, now)?;
            self.write_decision(tx, actor, action, &before, after, &dependents, changed, now)
                .await
        })?;
        self.wake_delivery();
        self.publish_retirement(id, "decided");
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_decision(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        action: Action,
        before: &Retirement,
        after: Retirement,
        dependents: &[Dependent],
        changed: Vec<Dependent>,
        now: DateTime<Utc>,
    ) -> Result<Retirement, ServiceError> {
        if after != *before {
            repo::update(tx.conn(), &after).await?;
        }
        // Every dependent as it stands after the decision.
        let all: Vec<Dependent> = dependents
            .iter()
            .map(|o| {
                changed
                    .iter()
                    .find(|d| d.consumer_id == o.consumer_id)
                    .unwrap_or(o)
                    .clone()
            })
            .collect();
        for d in &changed {
            repo::update_dependent(tx.conn(), d).await?;
        }
        // Told: everyone when the date moved, else those whose notice's end moved.
        let told: Vec<Dependent> = if after.effective_at != before.effective_at {
            all.clone()
        } else {
            changed
                .iter()
                .filter(|d| {
                    dependents.iter().any(|o| {
                        o.consumer_id == d.consumer_id && o.notice_ends_at != d.notice_ends_at
                    })
                })
                .cloned()
                .collect()
        };
        let consumers = self.consumers_of(&told);
        let escalate_to = outbox::escalation_contacts(self, tx.conn(), &after).await?;
        let notices = self.notices_for(
            &after,
            NoticeKind::Updated,
            told.iter()
                .filter_map(|d| consumers.get(&d.consumer_id).map(|c| (d, c))),
            &escalate_to,
            now,
        );
        outbox_repo::insert(tx.conn(), &notices).await?;
        let mut audits = vec![
            AuditEntry::new(actor.audit_identity(), action, SubjectType::Retirement, before.id.to_string())
                .before(&serde_json::json!({ "retirement": before, "dependents": dependents.iter().filter(|o| changed.iter().any(|d| d.consumer_id == o.consumer_id)).collect::<Vec<_>>() }))
                .after(&serde_json::json!({ "retirement": &after, "dependents": &changed })),
        ];
        let refs: Vec<&Dependent> = all.iter().collect();
        let mut after = after;
        if let Some((moved, entry)) = self
            .follow_dependents(tx, &after, &refs, now, actor.audit_identity())
            .await?
        {
            after = moved;
            audits.push(entry);
        }
        tx.append_audits(now, audits, self.service_key().audit_mac_key())
            .await?;
        Ok(after)
    }
}

/// Who asks for more time.
pub enum Requester<'a> {
    /// A token holder for the named consumer.
    Actor(&'a Actor, &'a str),
    /// The holder of a notice link (its token).
    Link(&'a str),
}

/// Whether `actor` may acknowledge or ask for more time on behalf of consumer `name`
/// (owned by `owner`): governance, an admin, a token bound to it, or an owner of its
/// team. Pages ask it to decide which forms to offer; the use cases enforce it.
pub fn may_act_for(
    actor: &Actor,
    name: &ConsumerName,
    owner: Option<&crate::domain::TeamName>,
) -> bool {
    actor.role == Role::Governance
        || actor.role == Role::Admin
        || actor.consumer.as_ref() == Some(name)
        || (actor.role == Role::Owner && actor.team.is_some() && actor.team.as_ref() == owner)
}
