//! Acknowledgements: a dependent says it has moved off (by mutation, or by the no-login
//! link in its notice); each is audited and may let the retirement become ready.

use super::not_found;
use crate::attest::link_token::{LinkClaims, LinkPurpose};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::ConsumerName;
use crate::domain::Dependent;
use crate::domain::RetirementId;
use crate::graph::ConsumerId;
use crate::service::ServiceError;
use crate::store::retirements as repo;
use chrono::{DateTime, Utc};

impl crate::service::Retirements<'_> {
    /// Acknowledges a retirement on behalf of one dependent: by a token bound to it, an
    /// owner of its team, or governance.
    pub async fn acknowledge_retirement(
        &self,
        actor: &Actor,
        id: RetirementId,
        consumer: &str,
    ) -> Result<Dependent, ServiceError> {
        let consumer = ConsumerName::parse(consumer)?;
        let consumer_id = self.may_act_for(actor, &consumer).await?;
        self.acknowledge(id, consumer_id, &actor.name, actor.audit_identity())
            .await
    }

    /// Acknowledges through the link in a notice: the token names the retirement and the
    /// dependent, and needs no login.
    pub async fn acknowledge_by_link(&self, token: &str) -> Result<Dependent, ServiceError> {
        let claims = self.link_claims(token).await?;
        let by = format!("link:{}", claims.dependent);
        self.acknowledge(
            RetirementId(claims.retirement),
            ConsumerId(claims.dependent),
            &by,
            ("notice-link", "dependent").into(),
        )
        .await
    }

    /// What a notice link is for, if it is valid now and still needed: its retirement
    /// is pending and still counts the dependent. A link of a retirement that was
    /// cancelled or has run, or of a dependent no longer on it, answers `GONE`.
    pub async fn link_claims(&self, token: &str) -> Result<LinkClaims, ServiceError> {
        let claims = self
            .service_key()
            .link_token_key()
            .verify(token, LinkPurpose::Acknowledge, self.now())
            .map_err(|e| ServiceError::Forbidden(e.to_string()))?;
        let db = self.store().reader();
        let retirement = repo::find(db, RetirementId(claims.retirement)).await?;
        let gone = match &retirement {
            None => Some("its retirement no longer exists".to_owned()),
            Some(r) if !r.state.is_pending() => Some(format!("retirement {} is {}", r.id, r.state)),
            Some(r)
                if repo::dependent(db, r.id, ConsumerId(claims.dependent))
                    .await?
                    .is_none() =>
            {
                Some("its dependent is no longer on the retirement".to_owned())
            }
            Some(_) => None,
        };
        match gone {
            Some(why) => Err(ServiceError::Gone(format!(
                "this link is no longer needed: {why}"
            ))),
            None => Ok(claims),
        }
    }

    async fn acknowledge(
        &self,
        id: RetirementId,
        consumer_id: ConsumerId,
        by: &str,
        identity: crate::audit::AuditIdentity<'_>,
    ) -> Result<Dependent, ServiceError> {
        let done = in_write_tx!(self, |tx| {
            let now = self.now();
            let retirement = repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| not_found(id))?;
            let before = repo::dependent(tx.conn(), id, consumer_id)
                .await?
                .ok_or_else(|| {
                    ServiceError::NotFound(format!(
                        "retirement {id} has no such dependent; it was not notified"
                    ))
                })?;
            if !retirement.state.is_pending() {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id} is {}; there is nothing left to acknowledge",
                    retirement.state
                )));
            }
            if before.acknowledged_at.is_some() {
                // Opening the link twice is not an error: the first acknowledgement stands.
                return Ok(before);
            }
            let after = before.acknowledged(by, now);
            self.record_dependent(
                tx,
                identity,
                Action::RetirementAcknowledged,
                &before,
                &after,
                now,
            )
            .await?;
            Ok(after)
        })?;
        self.publish_retirement(id, "acknowledged");
        Ok(done)
    }

    /// Writes one dependent's change and its audit record (before and after).
    pub(super) async fn record_dependent(
        &self,
        tx: &mut crate::store::WriteTx,
        identity: crate::audit::AuditIdentity<'_>,
        action: Action,
        before: &Dependent,
        after: &Dependent,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        repo::update_dependent(tx.conn(), after).await?;
        let entry = AuditEntry::new(
            identity,
            action,
            SubjectType::Retirement,
            after.retirement_id.to_string(),
        )
        .before(before)
        .after(after);
        self.append_audit(tx, now, entry).await
    }
}
